"""Fixtures of the reader-page tests."""

from __future__ import annotations

import pytest

from lectern_dev.harness.books import ingest_book
from lectern_dev.stack import Stack


@pytest.fixture(scope="module")
def book(stack: Stack) -> dict:
    """The sample book, ingested (idempotent when another area already did)."""
    return ingest_book(stack)
