"""The start page each role lands on, and the health check."""
