"""HTTP routes of the profile service: forwardAuth verification and reader profiles."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import APIRouter, Header, Path, Request, Response

from lectern_common.context import current_request_id
from lectern_common.contracts import USER_ID_PATTERN, ReaderProfile
from lectern_common.errors import NotFound, error_body
from lectern_common.http import ServiceUnavailable
from lectern_common.identity import Reader
from lectern_common.responses import FastJSONResponse
from lectern_profile import profiles, store
from lectern_profile.schemas import ProfileDeleted, ProfileOptions, ProfileUpdate
from lectern_profile.state import State
from lectern_profile.verification import InvalidCredential

log = structlog.get_logger()

router = APIRouter(tags=["profile"])

UserId = Annotated[str, Path(pattern=USER_ID_PATTERN)]

GATEWAY_ERRORS = {
    404: ("not_found", "no such route"),
    413: ("payload_too_large", "the request body is too large"),
    502: ("bad_gateway", "the service behind this route cannot be reached; try again"),
    504: ("gateway_timeout", "the service behind this route did not answer in time; try again"),
}


def client_address(request: Request) -> str:
    # Traefik overwrites X-Forwarded-For (no trusted upstream), so its first entry is the client.
    forwarded = request.headers.get("x-forwarded-for", "")
    return forwarded.split(",")[0].strip() or (request.client.host if request.client else "-")


@router.get("/internal/auth/verify", include_in_schema=False)
async def verify(
    request: Request, state: State, authorization: Annotated[str | None, Header()] = None
) -> Response:
    """forwardAuth target: 200 (+X-User-Id when signed in), 401 for a bad credential.
    Also hands the gateway the request id, the rate-limit key and the assertion that vouches
    for all three (X-Internal-Token), which the gateway forwards without knowing any secret."""
    try:
        reader = await state.verifier.reader_for(
            authorization=authorization, cookies=request.cookies
        )
    except InvalidCredential as exc:
        log.info("auth.rejected", reason=exc.reason)
        raise
    # X-Request-Id is on every answer already (RequestContextMiddleware); a second copy here
    # would reach the service as a repeated header, which the assertion check refuses.
    headers = {"X-Rate-Key": reader or f"ip:{client_address(request)}"}
    if reader:
        headers["X-User-Id"] = reader
    assertion = state.verifier.assertion(
        user_id=reader or "",
        request_id=current_request_id() or "",
        rate_key=headers["X-Rate-Key"],
    )
    if assertion:
        headers["X-Internal-Token"] = assertion
    return Response(status_code=200, headers=headers)


@router.api_route(
    "/errors/{status}",
    methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
    include_in_schema=False,
)
async def gateway_error(status: int) -> FastJSONResponse:
    """The gateway's own answers in the error envelope: its catch-all route (404) and the
    errors middleware (a backend that cannot be reached) fetch their bodies here, with the
    method the client used (a DELETE to a path nobody routes is a 404 too, not a 405)."""
    if status not in GATEWAY_ERRORS:
        status = 404
    code, message = GATEWAY_ERRORS[status]
    return FastJSONResponse(error_body(code, message), status_code=status)


@router.get("/api/profile/options")
async def options() -> ProfileOptions:
    """The allowed values of each profile field (public)."""
    return ProfileOptions()


@router.get("/api/profile/me")
async def read_my_profile(reader: Reader, state: State) -> ReaderProfile:
    record = await store.get(state.pool, reader)
    if record is None:
        raise NotFound("profile")
    return profiles.to_profile(record)


@router.put("/api/profile/me")
async def update_my_profile(update: ProfileUpdate, reader: Reader, state: State) -> ReaderProfile:
    """Create or change the profile: fields left out keep their value, null clears one."""
    record = await store.upsert(state.pool, reader, update.changes())
    log.info("profile.saved", fields=sorted(update.changes()))
    return profiles.to_profile(record)


@router.delete("/api/profile/me")
async def delete_my_profile(reader: Reader, state: State) -> ProfileDeleted:
    """Delete the profile and the reader's conversations."""
    try:
        return await profiles.delete_reader(pool=state.pool, chat=state.chat, user_id=reader)
    except ServiceUnavailable as exc:
        raise profiles.ConversationsNotDeleted from exc


@router.get("/internal/profiles/{user_id}", include_in_schema=False)
async def internal_profile(user_id: UserId, state: State) -> ReaderProfile:
    """A reader's profile for the other services (404 when the reader has none)."""
    record = await store.get(state.pool, user_id)
    if record is None:
        raise NotFound("profile")
    return profiles.to_profile(record)
