"""Authentication as the ClearML SDK expects it: `auth.login` with a key pair answers a JWT.

Every call but GET /health carries `Authorization: Bearer <token>` (or Basic with the key pair);
the `authenticate` middleware turns it into the caller's `Identity`, which becomes the actor of
the events the call records. Tokens are HS256 JWTs signed with the installation's auth secret,
so any gateway replica sharing that secret accepts any replica's tokens. Refusals are 401s with
clearml-server's subcodes.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import jwt
from aiohttp import web

from gateway.call import Call, Endpoint, settings_key
from gateway.envelope import SERVED_API_VERSION, ApiError
from gateway.identity import DEFAULT_IDENTITY, IDENTITY_KEY, Identity
from gateway.request import optional_int, required_string
from tasktrail.config import Settings
from tasktrail.credentials import with_credentials

TOKEN_ALGORITHM = "HS256"
DEFAULT_EXPIRATION_SEC = 30 * 24 * 3600  # as clearml-server; also the longest a client may ask for
MIN_SECRET_LENGTH = 32
# The clearml-server release that serves API 2.23; the SDK reads it from the token.
COMPATIBLE_SERVER_VERSION = "1.9.0"
PUBLIC_PATHS = frozenset({"/health"})


# 401 subcodes as clearml-server numbers them.
def bad_auth_type(scheme: str) -> ApiError:
    return ApiError(401, 10, f"Unauthorized (bad authentication header type {scheme!r}: use Basic or Bearer)")


def missing_credentials() -> ApiError:
    return ApiError(401, 20, "Unauthorized (missing credentials)")


def malformed_credentials(detail: str) -> ApiError:
    return ApiError(401, 21, f"Unauthorized (malformed credentials: {detail})")


def invalid_credentials() -> ApiError:
    return ApiError(401, 22, "Unauthorized (invalid credentials)")


def invalid_token(detail: str) -> ApiError:
    return ApiError(401, 30, f"Invalid token: {detail}")


class Authenticator:
    """Checks key pairs and tokens, and issues tokens."""

    def __init__(self, key_pairs: dict[str, tuple[str, Identity]], signing_secret: str,
                 clock: Callable[[], float] = time.time) -> None:
        if len(signing_secret) < MIN_SECRET_LENGTH:
            raise ValueError(f"the auth secret must have at least {MIN_SECRET_LENGTH} characters")
        self.key_pairs = key_pairs
        self.signing_secret = signing_secret
        self.clock = clock

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator:
        settings = with_credentials(settings)
        return cls({settings.access_key: (settings.secret_key, DEFAULT_IDENTITY)}, settings.auth_secret)

    def identify(self, authorization: str | None) -> Identity:
        """The identity an Authorization header proves, or a 401 ApiError."""
        if not authorization or not authorization.strip():
            raise missing_credentials()
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer":
            return self.check_token(value.strip())
        if scheme.lower() == "basic":
            return self.check_basic(value.strip())
        raise bad_auth_type(scheme)

    def check_basic(self, encoded: str) -> Identity:
        try:
            decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise malformed_credentials("not base64 of access_key:secret_key") from None
        access_key, colon, secret_key = decoded.partition(":")
        if not colon or not access_key:
            raise malformed_credentials("expected access_key:secret_key")
        known = self.key_pairs.get(access_key)
        if known is None or not hmac.compare_digest(known[0].encode(), secret_key.encode()):
            raise invalid_credentials()
        return known[1]

    def issue_token(self, identity: Identity, expiration_sec: int | None = None) -> str:
        now = int(self.clock())
        lifetime = min(expiration_sec or DEFAULT_EXPIRATION_SEC, DEFAULT_EXPIRATION_SEC)
        claims: dict[str, Any] = {
            "identity": identity.claims(),
            "iat": now,
            "exp": now + lifetime,
            "api_version": SERVED_API_VERSION,
            "server_version": COMPATIBLE_SERVER_VERSION,
            "feature_set": "basic",
            "env": "tasktrail",
        }
        return jwt.encode(claims, self.signing_secret, algorithm=TOKEN_ALGORITHM)

    def check_token(self, token: str) -> Identity:
        if not token:
            raise missing_credentials()
        try:
            claims = jwt.decode(
                token,
                self.signing_secret,
                algorithms=[TOKEN_ALGORITHM],
                options={"require": ["exp", "iat"], "verify_iat": False},
            )
        except jwt.ExpiredSignatureError:
            raise invalid_token("token expired") from None
        except jwt.InvalidTokenError as error:
            raise invalid_token(str(error) or type(error).__name__) from None
        # `exp` is checked against the library's clock; an injected clock (tests) may be later.
        if claims["exp"] <= self.clock():
            raise invalid_token("token expired")
        try:
            return Identity.from_claims(claims.get("identity"))
        except ValueError as error:
            raise invalid_token(str(error)) from None


authenticator_key = web.AppKey("authenticator", Authenticator)


async def auth_context(app: web.Application) -> AsyncIterator[None]:
    app[authenticator_key] = await asyncio.to_thread(Authenticator.from_settings, app[settings_key])
    yield


@web.middleware
async def authenticate(request: web.Request, handler) -> web.StreamResponse:
    """Every call but the public paths must prove who makes it."""
    if request.path not in PUBLIC_PATHS:
        request[IDENTITY_KEY] = request.app[authenticator_key].identify(request.headers.get("Authorization"))
    return await handler(request)


# -- the auth service ---------------------------------------------------------------------
async def login(call: Call) -> dict[str, Any]:
    """A token for the caller (who proved themselves with the key pair, or a token to refresh)."""
    expiration_sec = optional_int(call.body, "expiration_sec", minimum=1)
    token = call.request.app[authenticator_key].issue_token(call.identity, expiration_sec)
    return {"token": token}


async def validate_token(call: Call) -> dict[str, Any]:
    token = required_string(call.body, "token")
    try:
        identity = call.request.app[authenticator_key].check_token(token)
    except ApiError as refusal:
        return {"valid": False, "msg": refusal.message, "user_id": None, "company_id": None}
    return {"valid": True, "msg": "", "user_id": identity.user, "company_id": identity.company}


ENDPOINTS: dict[str, Endpoint] = {
    "auth.login": login,
    "auth.validate_token": validate_token,
}
