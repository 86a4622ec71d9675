"""A JSON answer built by hand (error envelopes, health views): rendered by orjson, as FastAPI's
ORJSONResponse did before it was deprecated. Routes that declare a response model need none:
FastAPI serialises those straight to bytes through Pydantic, which is why the apps set no
default response class."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse


class FastJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
