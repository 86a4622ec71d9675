"""The short-lived signed assertion a service trusts `X-User-Id` on: issued by the profile
service's forwardAuth answer (for requests through the gateway) and by InternalClient (for
service-to-service calls), checked by RequestContextMiddleware on every request.

`X-Internal-Token: v1.<kind>.<unix_ts>.<base64url HMAC-SHA256(INTERNAL_TOKEN, message)>` where
message = `v1|<kind>|<ts>|<X-User-Id>|<X-Request-Id>|<X-Rate-Key>` (an absent header is "").
The gateway only copies it from the verify answer to the forwarded request, so its
configuration holds no secret. docs/SECURITY.md has the reasoning.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Literal

# Who vouched: the verify answer the gateway forwards ("gw"), or a service calling another
# ("svc"). Only "svc" opens /internal/* routes: verify is open to anyone who can reach the
# profile service, so its assertions must not reach further than the public routes do.
Kind = Literal["gw", "svc"]
KINDS: frozenset[str] = frozenset({"gw", "svc"})
VERSION = "v1"
# An assertion is used within milliseconds of being made; a minute covers slow hops and clock
# skew between hosts, and bounds how long a captured one could be replayed.
MAX_AGE_S = 60
MAX_AHEAD_S = 5
_MAX_CHARS = 128


def _message(kind: str, ts: str, user_id: str, request_id: str, rate_key: str) -> bytes:
    return "|".join((VERSION, kind, ts, user_id, request_id, rate_key)).encode()


class AssertionSigner:
    """Makes and checks assertions with one service secret (INTERNAL_TOKEN)."""

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("an assertion signer needs a secret")
        self._key = secret.encode()

    def _mac(self, message: bytes) -> str:
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def sign(
        self,
        kind: Kind,
        *,
        user_id: str = "",
        request_id: str = "",
        rate_key: str = "",
        now: float | None = None,
    ) -> str:
        ts = str(int(time.time() if now is None else now))
        mac = self._mac(_message(kind, ts, user_id, request_id, rate_key))
        return f"{VERSION}.{kind}.{ts}.{mac}"

    def verify(
        self,
        assertion: str,
        *,
        user_id: str = "",
        request_id: str = "",
        rate_key: str = "",
        now: float | None = None,
    ) -> Kind | None:
        """The kind of a valid, fresh assertion for exactly these headers; None otherwise."""
        if len(assertion) > _MAX_CHARS:
            return None
        parts = assertion.split(".")
        if len(parts) != 4:
            return None
        version, kind, ts, mac = parts
        if version != VERSION or kind not in KINDS or not (ts.isascii() and ts.isdigit()):
            return None
        age = (time.time() if now is None else now) - int(ts)
        if age > MAX_AGE_S or age < -MAX_AHEAD_S:
            return None
        expected = self._mac(_message(kind, ts, user_id, request_id, rate_key))
        if not hmac.compare_digest(mac.encode(), expected.encode()):
            return None
        return "gw" if kind == "gw" else "svc"
