"""Benchmark harness: the app under gunicorn, driven by wrk, measured against a bare Flask control."""
