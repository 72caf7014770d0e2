"""The consent domain: consent records and the policy that decides every use of a testimony.

Pure Python: this package imports neither Flask nor SQLAlchemy, so the rules can be read, tested and reused on
their own. The intake issue fills it in.
"""
