"""Shared mechanisms with no business rules. Nothing here imports a business module."""
