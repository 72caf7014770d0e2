"""Backups of the database (and of attachment files kept outside it), and their verification by restoring them.

`operations` holds the logic and needs no request; `cli` holds `intake backup create` and `intake backup verify`.
A backup never holds the keyring: that is backed up apart, with `intake keys backup`.
"""
