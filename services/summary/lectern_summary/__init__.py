"""Lectern summary service."""
