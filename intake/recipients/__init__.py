"""Recipients of case files: the organisations an administrator registers, with their agreement and age keys."""
