"""Superuser administration of user accounts (API.md section 5)."""
