"""Who is asking: the reader id the gateway set (X-User-Id), as FastAPI dependencies.

The header is trusted only because RequestContextMiddleware already refused every request
whose signed assertion does not bind it (and removed it on the open paths that need none),
and the gateway replaces any client-sent X-User-Id with its forwardAuth answer's.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header

from lectern_common.contracts import USER_ID
from lectern_common.errors import ApiError


async def optional_reader(
    x_user_id: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> str | None:
    if x_user_id is None or x_user_id == "":
        return None
    if not USER_ID.match(x_user_id):
        raise ApiError(401, "unauthorized", "invalid identity")
    return x_user_id


async def signed_in_reader(reader: Annotated[str | None, Depends(optional_reader)]) -> str:
    if reader is None:
        raise ApiError(
            401, "unauthorized", "sign in required", headers={"WWW-Authenticate": "Bearer"}
        )
    return reader


OptionalReader = Annotated[str | None, Depends(optional_reader)]
Reader = Annotated[str, Depends(signed_in_reader)]
