"""The Better Auth server through the gateway: sign-up, sign-in, sign-out, JWTs and the JWKS."""

from __future__ import annotations

import httpx
import jwt as pyjwt

from lectern_dev.harness.readers import auth_request, new_reader, sign_in, sign_up
from lectern_dev.harness.replicas import wait_for_http
from lectern_dev.stack import Process, Stack, auth_command, free_port


def test_sign_up_returns_a_session_token_and_a_jwt_for_the_new_reader(
    stack: Stack, gateway: httpx.Client
):
    reader = new_reader(gateway)
    assert reader.user_id and reader.session_token
    assert reader.signed_session_token.startswith(reader.session_token + ".")
    header = pyjwt.get_unverified_header(reader.jwt)
    assert header["alg"] == "EdDSA" and header["kid"]

    jwks = pyjwt.PyJWKSet.from_dict(gateway.get("/api/auth/jwks").json())
    key = next(k for k in jwks.keys if k.key_id == header["kid"])
    claims = pyjwt.decode(
        reader.jwt,
        key.key,
        algorithms=["EdDSA"],
        issuer=stack.gateway_url,
        audience=stack.gateway_url,
    )
    assert claims["sub"] == reader.user_id
    # Short-lived (a JWT cannot be revoked) and carrying no personal data.
    assert 0 < claims["exp"] - claims["iat"] <= 900
    assert "email" not in claims


def test_sign_in_with_the_password_gives_a_new_working_session(gateway: httpx.Client):
    reader = new_reader(gateway)
    signed_in = sign_in(gateway, reader.email, reader.password)
    assert signed_in.status_code == 200, signed_in.text
    token = signed_in.json()["token"]
    assert token != reader.session_token
    session = auth_request(
        gateway, "GET", "/api/auth/get-session", headers={"authorization": f"Bearer {token}"}
    )
    assert session.json()["user"]["id"] == reader.user_id


def test_wrong_password_duplicate_email_and_short_password_are_refused(gateway: httpx.Client):
    reader = new_reader(gateway)
    wrong = sign_in(gateway, reader.email, reader.password + "x")
    assert wrong.status_code == 401
    assert "token" not in wrong.json()
    assert sign_up(gateway, email=reader.email).status_code == 422
    assert sign_up(gateway, password="short").status_code == 400


def test_a_foreign_origin_cannot_sign_in(gateway: httpx.Client):
    reader = new_reader(gateway)
    response = sign_in(
        gateway, reader.email, reader.password, headers={"origin": "https://evil.example"}
    )
    assert response.status_code == 403


def test_better_auths_own_429_says_when_to_come_back(stack: Stack):
    """Better Auth's rate limiter (on in production; AUTH_RATE_LIMIT=on here) refuses a fourth
    sign-in from one address within 10 s. Its 429 names the wait only in X-Retry-After; ours
    carries the standard Retry-After too, as every 429 of Lectern does."""
    port = free_port()
    auth = Process(
        "auth-rate-limited",
        auth_command(),
        env={**stack.env_of("auth"), "AUTH_PORT": str(port), "AUTH_RATE_LIMIT": "on"},
        log=stack.logs / "auth-rate-limited.log",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/api/auth/ok", auth, timeout_s=30)
        headers = {"origin": stack.gateway_url, "x-forwarded-for": "203.0.113.77"}
        body = {"email": "nobody-rate@example.com", "password": "not-the-password"}
        codes, refused = [], None
        with httpx.Client(base_url=url, timeout=10) as client:
            for _ in range(8):
                response = client.post("/api/auth/sign-in/email", json=body, headers=headers)
                codes.append(response.status_code)
                if response.status_code == 429:
                    refused = response
                    break
        assert refused is not None, codes
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.headers["retry-after"] == refused.headers["x-retry-after"]
    finally:
        auth.stop()
