"""Shared building blocks for Lectern's services (settings, logging, errors, HTTP, stores)."""
