"""Who is asking: a Better Auth JWT checked against the JWKS, or a Better Auth session token
(bare, signed, or in the session cookie) checked against Better Auth's session table; and the
signed assertion (lectern_common.trust) the gateway forwards so the services trust the answer."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import time
from urllib.parse import unquote

import asyncpg
import httpx
import jwt
import structlog

from lectern_common.contracts import USER_ID
from lectern_common.errors import ApiError
from lectern_common.trust import AssertionSigner
from lectern_profile.settings import ProfileSettings

log = structlog.get_logger()

SESSION_COOKIES = ("better-auth.session_token", "__Secure-better-auth.session_token")
MAX_CREDENTIAL_CHARS = 4096
_SESSION_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
_SIGNATURE = re.compile(r"^[A-Za-z0-9+/]{43}=$")  # standard base64 of a SHA-256 HMAC
REQUIRED_CLAIMS = ["exp", "iat", "sub", "iss", "aud"]


class InvalidCredential(ApiError):
    """A credential was presented and is not valid: the gateway answers 401."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            401,
            "unauthorized",
            "invalid or expired credential",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
        self.reason = reason


class AuthUnavailable(ApiError):
    """The credential could not be checked (auth server or database down): 503, never 401."""

    def __init__(self, what: str) -> None:
        super().__init__(503, "dependency_unavailable", f"{what} is unavailable")


class JwksKeys:
    """Better Auth's public keys by `kid`, cached in-process. An unknown `kid` refetches the
    JWKS (one fetch at a time, at most once per `min_refetch_s`), so a known key never costs a
    network call and forged kids cannot turn every request into a call to the auth server."""

    def __init__(self, *, url: str, timeout_s: float, min_refetch_s: float) -> None:
        self.url, self.min_refetch_s = url, min_refetch_s
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(timeout_s))
        self.keys: dict[str, jwt.PyJWK] = {}
        self._lock = asyncio.Lock()
        self._fetched_at = float("-inf")
        self._failed = False

    async def get(self, kid: str) -> jwt.PyJWK | None:
        if (key := self.keys.get(kid)) is not None:
            return key
        async with self._lock:
            if kid not in self.keys and self._may_refetch():
                await self._refetch()
            elif kid not in self.keys and self._failed:
                raise AuthUnavailable("auth key set")
        return self.keys.get(kid)

    def _may_refetch(self) -> bool:
        return time.monotonic() - self._fetched_at >= self.min_refetch_s

    async def _refetch(self) -> None:
        self._fetched_at = time.monotonic()
        try:
            response = await self.client.get(self.url)
            response.raise_for_status()
            key_set = jwt.PyJWKSet.from_dict(response.json())
        except (httpx.HTTPError, ValueError, jwt.PyJWKSetError) as exc:
            self._failed = True
            log.warning("jwks.fetch_failed", url=self.url, error=type(exc).__name__)
            raise AuthUnavailable("auth key set") from exc
        self._failed = False
        self.keys = {k.key_id: k for k in key_set.keys if k.key_id and k.algorithm_name == "EdDSA"}
        log.info("jwks.fetched", kids=sorted(self.keys))

    async def aclose(self) -> None:
        await self.client.aclose()


def session_signature(token: str, secret: str) -> str:
    """Better Auth's cookie/bearer signature: standard base64 of HMAC-SHA256(secret, token)."""
    digest = hmac.new(secret.encode(), token.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def unsign_session_token(value: str, secret: str) -> str:
    token, _, signature = value.partition(".")
    if not _SIGNATURE.match(signature) or not hmac.compare_digest(
        signature, session_signature(token, secret)
    ):
        raise InvalidCredential("bad_signature")
    return token


def looks_like_jwt(value: str) -> bool:
    return value.count(".") == 2


class Verifier:
    """Turns the request's credential into a reader id (None when there is no credential), and
    vouches for the answer with an assertion the services check."""

    def __init__(self, *, settings: ProfileSettings, pool: asyncpg.Pool, keys: JwksKeys) -> None:
        self.settings, self.pool, self.keys = settings, pool, keys
        self.secret = settings.better_auth_secret.get_secret_value()
        internal_token = settings.internal_token.get_secret_value()
        self.signer = AssertionSigner(internal_token) if internal_token else None
        # The schema name is validated by its settings pattern.
        table = f'"{settings.auth_schema}"."session"'
        self.session_sql = (
            f'SELECT s."userId" FROM {table} s '  # noqa: S608
            'WHERE s."token" = $1 AND s."expiresAt" > now()'
        )

    async def reader_for(self, *, authorization: str | None, cookies: dict[str, str]) -> str | None:
        if authorization is not None:
            return await self._from_authorization(authorization)
        for name in SESSION_COOKIES:
            if (value := cookies.get(name)) is not None:
                # Browsers carry it percent-encoded (the signature has '+', '/', '=').
                return await self._from_session(unsign_session_token(unquote(value), self.secret))
        return None

    def assertion(self, *, user_id: str, request_id: str, rate_key: str) -> str | None:
        """The X-Internal-Token the gateway forwards with these headers (None without a
        secret: a local stack that trusts every request)."""
        if self.signer is None:
            return None
        return self.signer.sign("gw", user_id=user_id, request_id=request_id, rate_key=rate_key)

    async def _from_authorization(self, header: str) -> str:
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        if scheme.lower() != "bearer" or not value or len(value) > MAX_CREDENTIAL_CHARS:
            raise InvalidCredential("malformed_authorization")
        if looks_like_jwt(value):
            return await self._from_jwt(value)
        if "." in value:
            value = unsign_session_token(value, self.secret)
        return await self._from_session(value)

    async def _from_jwt(self, token: str) -> str:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise InvalidCredential("malformed_jwt") from exc
        # Pinned: `none`, HS256 with the public key as secret and the like never get this far.
        if header.get("alg") != "EdDSA":
            raise InvalidCredential("algorithm")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidCredential("missing_kid")
        key = await self.keys.get(kid)
        if key is None:
            raise InvalidCredential("unknown_kid")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=["EdDSA"],
                issuer=self.settings.better_auth_url,
                audience=self.settings.expected_audience,
                leeway=self.settings.jwt_leeway_s,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidCredential("expired") from exc
        except jwt.InvalidTokenError as exc:
            raise InvalidCredential(type(exc).__name__) from exc
        subject = claims["sub"]
        if not isinstance(subject, str) or not USER_ID.match(subject):
            raise InvalidCredential("subject")
        return subject

    async def _from_session(self, token: str) -> str:
        if not _SESSION_TOKEN.match(token):
            raise InvalidCredential("malformed_session_token")
        try:
            user_id = await self.pool.fetchval(self.session_sql, token, timeout=5)
        except (asyncpg.PostgresError, OSError, TimeoutError) as exc:
            log.warning("session.lookup_failed", error=type(exc).__name__)
            raise AuthUnavailable("session store") from exc
        if user_id is None:
            raise InvalidCredential("unknown_session")
        return user_id
