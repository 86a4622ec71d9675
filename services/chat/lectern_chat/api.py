"""HTTP routes of the chat service."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/chat", tags=["chat"])
