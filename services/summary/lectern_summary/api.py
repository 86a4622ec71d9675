"""HTTP routes of the summary service."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["summary"])
