"""Siyu (私域): private-domain commerce — a social-commerce mall and an SCRM in one system."""

__version__ = "0.1.0"
