"""The authors' admin view: `GET /api/admin/insights` (JSON, or CSV with `?format=csv`), behind
the admin credential (`Authorization: Bearer $ADMIN_TOKEN`)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import Response

from lectern_chat import insights
from lectern_chat.schemas import Insights
from lectern_chat.state import State
from lectern_common.errors import ApiError

MAX_DAYS = 365


async def require_admin(
    state: State, authorization: Annotated[str | None, Header(include_in_schema=False)] = None
) -> None:
    """401 without a credential; 403 with one that is not the admin's (a reader's session,
    say): a reader can never see the view."""
    expected = state.settings.admin_token.get_secret_value()
    if not expected:
        raise ApiError(403, "forbidden", "the admin view is disabled (ADMIN_TOKEN is not set)")
    scheme, _, token = (authorization or "").partition(" ")
    if not token.strip():
        raise ApiError(
            401, "unauthorized", "admin credential required", headers={"WWW-Authenticate": "Bearer"}
        )
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), expected.encode()
    ):
        raise ApiError(403, "forbidden", "this credential is not the admin credential")


router = APIRouter(prefix="/api/admin", tags=["admin"], dependencies=[Depends(require_admin)])


def reader_key(state: State) -> bytes:
    """The key of the opaque reader ids: derived from the internal token, which no admin holds,
    so an admin who knows a user id still cannot tell which id is theirs."""
    secret = state.settings.internal_token.get_secret_value().encode()
    return hashlib.sha256(b"lectern-insights-reader-id\0" + secret).digest()


@router.get("/insights", response_model=Insights)
async def read_insights(
    state: State,
    days: Annotated[int, Query(ge=1, le=MAX_DAYS)] = 30,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> Response | dict:
    """Per chapter, the questions that cited it; uncovered questions grouped; down-rated
    answers with comments; the share of unsupported citations, over the last `days`."""
    data = await insights.report(
        state.pool,
        insights.Period.last(days),
        key=reader_key(state),
        limit=state.settings.insights_max_rows,
        threshold=state.settings.insights_group_jaccard,
    )
    if format == "csv":
        return Response(
            insights.as_csv(data),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="lectern-insights-{days}d.csv"',
                "Cache-Control": "no-store",
            },
        )
    return data
