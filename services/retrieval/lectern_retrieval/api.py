"""HTTP routes of the retrieval service."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["retrieval"])
