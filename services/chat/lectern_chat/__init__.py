"""Lectern chat service."""
