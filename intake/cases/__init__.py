"""Legal teams' case files: members, the incidents and testimonies in them, and the exports built from them."""
