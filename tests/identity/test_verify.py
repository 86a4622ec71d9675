"""forwardAuth through the real gateway: which credentials let a reader in, which get 401,
and that the reader id a service sees always comes from the verify answer."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable

import httpx
import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lectern_dev.harness.polling import wait_until
from lectern_dev.harness.readers import Reader, auth_request, fetch_jwt, new_reader
from lectern_dev.harness.services import internal_headers
from lectern_dev.stack import Stack


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def me(gateway: httpx.Client, headers: dict[str, str]) -> httpx.Response:
    return gateway.get("/api/profile/me", headers=headers)


def assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    error = response.json()["error"]
    assert error["code"] == "unauthorized"
    assert error["request_id"]


def save_profile(gateway: httpx.Client, reader: Reader, **fields: str) -> None:
    response = gateway.put("/api/profile/me", headers=reader.headers, json=fields)
    assert response.status_code == 200, response.text


def forge(claims: dict, *, key: object, kid: str, alg: str = "EdDSA") -> str:
    return pyjwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


def real_claims(stack: Stack, reader: Reader, **overrides: object) -> dict:
    now = int(time.time())
    return {
        "sub": reader.user_id,
        "iat": now,
        "exp": now + 300,
        "iss": stack.gateway_url,
        "aud": stack.gateway_url,
        **overrides,
    }


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# ---- credentials that work -----------------------------------------------------------------


@pytest.mark.parametrize("credential", ["session_token", "signed_session_token", "jwt"])
def test_each_credential_reads_and_updates_the_readers_own_profile(
    gateway: httpx.Client, reader: Reader, credential: str
):
    headers = bearer(getattr(reader, credential))
    saved = gateway.put("/api/profile/me", headers=headers, json={"ros2_level": "beginner"})
    assert saved.status_code == 200, saved.text
    assert saved.json()["user_id"] == reader.user_id
    read = me(gateway, headers)
    assert read.status_code == 200
    assert read.json()["ros2_level"] == "beginner"


def test_the_signed_session_cookie_is_accepted_as_a_browser_sends_it(
    gateway: httpx.Client, reader: Reader
):
    save_profile(gateway, reader, answer_depth="brief")
    signed_in = auth_request(
        gateway,
        "POST",
        "/api/auth/sign-in/email",
        json={"email": reader.email, "password": reader.password},
    )
    # The Set-Cookie value exactly as Better Auth sent it (percent-encoded signature).
    cookie = signed_in.headers["set-cookie"].split(";")[0]
    assert cookie.startswith("better-auth.session_token=") and "%" in cookie
    response = gateway.get("/api/profile/me", headers={"cookie": cookie})
    assert response.status_code == 200, response.text
    assert response.json()["answer_depth"] == "brief"


def test_verify_answers_the_reader_id_request_id_and_rate_key(stack: Stack, reader: Reader):
    url = f"{stack.config.url('profile')}/internal/auth/verify"
    headers = {**internal_headers(stack), "x-forwarded-for": "203.0.113.9"}
    anonymous = httpx.get(url, headers=headers)
    assert anonymous.status_code == 200
    assert "x-user-id" not in anonymous.headers
    assert anonymous.headers["x-rate-key"] == "ip:203.0.113.9"
    assert anonymous.headers["x-request-id"]
    for token in (reader.jwt, reader.session_token):
        signed_in = httpx.get(url, headers={**headers, **bearer(token)})
        assert signed_in.status_code == 200
        assert signed_in.headers["x-user-id"] == reader.user_id
        assert signed_in.headers["x-rate-key"] == reader.user_id


def test_anonymous_readers_pass_public_routes_but_not_signed_in_ones(gateway: httpx.Client):
    assert gateway.get("/api/profile/options").status_code == 200
    assert_unauthorized(gateway.get("/api/profile/me"))


def test_a_known_key_costs_no_call_to_the_auth_server(
    stack: Stack, gateway: httpx.Client, reader: Reader
):
    def jwks_fetches() -> int:
        text = (stack.logs / "profile.log").read_text(errors="replace")
        return text.count('"jwks.fetched"') + text.count('"jwks.fetch_failed"')

    assert me(gateway, reader.jwt_headers).status_code == 404  # key known from here on
    before = jwks_fetches()
    assert before >= 1  # the first JWT of the session did fetch the key set
    for _ in range(20):
        assert me(gateway, reader.jwt_headers).status_code == 404
    assert jwks_fetches() == before


# ---- credentials that are refused ----------------------------------------------------------


def test_garbage_credentials_are_refused(gateway: httpx.Client):
    for header in (
        "Bearer nonsense",
        "Bearer",
        "Bearer a.b.c",
        "Bearer " + "x" * 5000,
        "Basic dXNlcjpwYXNz",
        "Bearer eyJhbGciOiJFZERTQSJ9.e30.AAAA",
    ):
        assert_unauthorized(me(gateway, {"authorization": header}))
    # Even a public route refuses a bad credential: the client should learn it is signed out.
    assert_unauthorized(gateway.get("/api/profile/options", headers=bearer("nonsense")))


def test_a_signed_out_session_token_stops_working_at_once(
    gateway: httpx.Client, reader: Reader, last_rejection: Callable[[], str]
):
    save_profile(gateway, reader, goals="learn ROS 2")
    assert me(gateway, reader.headers).status_code == 200
    signed_out = auth_request(gateway, "POST", "/api/auth/sign-out", headers=reader.headers)
    assert signed_out.status_code == 200, signed_out.text
    for token in (reader.session_token, reader.signed_session_token):
        assert_unauthorized(me(gateway, bearer(token)))
        assert last_rejection() == "unknown_session"


def test_a_session_token_with_a_forged_signature_is_refused(
    gateway: httpx.Client, reader: Reader, last_rejection: Callable[[], str]
):
    forged = reader.session_token + "." + base64.b64encode(b"\0" * 32).decode()
    assert_unauthorized(me(gateway, bearer(forged)))
    assert last_rejection() == "bad_signature"
    # The cookie must be signed: a bare token there is refused too.
    cookie = {"cookie": f"better-auth.session_token={reader.session_token}"}
    assert_unauthorized(gateway.get("/api/profile/me", headers=cookie))


def test_a_jwt_signed_by_another_key_is_refused(
    stack: Stack, gateway: httpx.Client, reader: Reader, last_rejection: Callable[[], str]
):
    real_kid = pyjwt.get_unverified_header(reader.jwt)["kid"]
    attacker = Ed25519PrivateKey.generate()
    # Claiming the real key's id: the signature check fails.
    assert_unauthorized(
        me(gateway, bearer(forge(real_claims(stack, reader), key=attacker, kid=real_kid)))
    )
    assert last_rejection() == "InvalidSignatureError"
    # Claiming a key id the auth server never issued: refused after the key set is rechecked.
    assert_unauthorized(
        me(gateway, bearer(forge(real_claims(stack, reader), key=attacker, kid=uuid.uuid4().hex)))
    )
    assert last_rejection() == "unknown_kid"


def test_alg_none_and_other_algorithms_are_refused(
    stack: Stack, gateway: httpx.Client, reader: Reader, last_rejection: Callable[[], str]
):
    kid = pyjwt.get_unverified_header(reader.jwt)["kid"]
    unsigned = forge(real_claims(stack, reader), key=None, kid=kid, alg="none")
    assert unsigned.endswith(".")
    assert_unauthorized(me(gateway, bearer(unsigned)))
    assert last_rejection() == "algorithm"
    # HS256 keyed with the public JWKS entry (the classic key-confusion attack).
    public_x = next(k for k in gateway.get("/api/auth/jwks").json()["keys"] if k["kid"] == kid)["x"]
    confused = forge(real_claims(stack, reader), key=public_x, kid=kid, alg="HS256")
    assert_unauthorized(me(gateway, bearer(confused)))
    assert last_rejection() == "algorithm"


def test_a_tampered_payload_is_refused(
    stack: Stack,
    gateway: httpx.Client,
    reader: Reader,
    other_reader: Reader,
    last_rejection: Callable[[], str],
):
    save_profile(gateway, other_reader, goals="B's secret goals")
    header, payload, signature = reader.jwt.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = other_reader.user_id
    tampered = f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"
    response = me(gateway, bearer(tampered))
    assert_unauthorized(response)
    assert "secret goals" not in response.text
    assert last_rejection() == "InvalidSignatureError"


# ---- the reader id a service sees ----------------------------------------------------------


def test_a_client_sent_x_user_id_never_reaches_a_service(
    gateway: httpx.Client, reader: Reader, other_reader: Reader
):
    save_profile(gateway, other_reader, goals="only B may read this")
    spoof = {"x-user-id": other_reader.user_id}
    # Anonymous: the spoofed id is dropped, so the service sees nobody.
    assert_unauthorized(me(gateway, spoof))
    # Signed in as A: the service sees A, whatever the client claimed.
    for headers in (reader.headers, reader.jwt_headers):
        response = me(gateway, {**headers, **spoof, "X-USER-ID": other_reader.user_id})
        assert response.status_code == 404  # A has no profile yet
        assert "only B" not in response.text
    save_profile(gateway, reader, goals="A's")
    response = me(gateway, {**reader.headers, **spoof})
    assert response.json()["user_id"] == reader.user_id


# ---- the strict stack: the real server's own JWTs, expired or for another audience ----------


def test_real_jwts_for_another_audience_and_expired_ones_are_refused(
    strict_stack: Stack, strict_last_rejection: Callable[[], str]
):
    with httpx.Client(base_url=strict_stack.gateway_url, timeout=30.0) as gateway:
        reader = new_reader(gateway)
        # The session token works here: only the JWT checks differ on this stack.
        assert me(gateway, reader.headers).status_code == 404
        fresh = fetch_jwt(gateway, reader.session_token)
        assert_unauthorized(me(gateway, bearer(fresh)))
        assert strict_last_rejection() == "InvalidAudienceError"

        # Once its 2 s are over, the same token is refused for having expired (asked a few
        # times a second: the gateway's per-address budget is 50/s).
        claims = pyjwt.decode(fresh, options={"verify_signature": False})
        wait_until(
            lambda: (
                me(gateway, bearer(fresh)).status_code == 401
                and strict_last_rejection() == "expired"
            ),
            max(0.0, claims["exp"] - time.time()) + 10,
            interval_s=0.25,
            message=lambda: f"still refused as {strict_last_rejection()}",
        )
        assert_unauthorized(me(gateway, bearer(fresh)))
        assert strict_last_rejection() == "expired"
