"""Lectern profile service."""
