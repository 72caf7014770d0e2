"""Retention: a schedule per category of survivor data in the configuration, and `intake retention run`, which
crypto-shreds what has been kept as long as the schedule allows and writes a disposal record to the audit log."""
