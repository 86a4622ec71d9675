"""Lectern retrieval service."""
