"""The consent domain: consent records and the policy that decides every use of a testimony.

Pure Python: this package imports neither Flask nor SQLAlchemy, so the rules can be read, tested and reused on
their own.

- `consent.records`: what a consent version records (script read, method, people present, confirmations, the
  minor flow, per-purpose grants and disclosure levels, media, follow-up, excluded recipients, review date,
  withdrawals).
- `consent.policy`: `decide(consent, purpose, recipient, at)`, default deny, with the reason.
- `consent.scripts`: the consent scripts read to the person, one data file per language and version, hashed.
"""
