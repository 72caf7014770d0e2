"""Testimonies and their attachments, sealed under each testimony's own data key."""
