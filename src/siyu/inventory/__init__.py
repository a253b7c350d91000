"""Inventory: stock per SKU per location, reservations, and an append-only movement ledger."""
