"""Consent versions and withdrawals as stored, and their conversion to `consent.records` for the policy."""
