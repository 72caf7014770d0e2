"""Case-file exports: consent-gated, redacted, encrypted to the recipient with age, signed with minisign."""
