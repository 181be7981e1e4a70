"""Who may do what (SPEC section 7): bearer tokens with admin, operator and viewer roles.

* viewer: GET only; operator: also migrations and their actions; admin: everything, which adds
  changing configuration properties.
* With no tokens configured every request is accepted, which is safe only because the server
  then refuses to listen anywhere but loopback (:func:`check_bind`).
* Health probes are open, so orchestrators need no token.
"""

from __future__ import annotations

import hmac

from fastapi import Request

from app.errors import Forbidden, Unauthorized
from app.settings import Settings

RANK = {"viewer": 0, "operator": 1, "admin": 2}
OPEN_PATHS = frozenset({"/healthz", "/readyz"})


class InsecureBind(Exception):
    """No FERRY_TOKENS are set, and the host is not a loopback address."""


def check_bind(settings: Settings) -> None:
    if not settings.tokens and not settings.binds_loopback:
        raise InsecureBind(
            f"refusing to listen on {settings.host}: set FERRY_TOKENS (role:token,...) to serve beyond loopback"
        )


def required_role(method: str, path: str) -> str:
    if method in ("GET", "HEAD", "OPTIONS"):
        return "viewer"
    if path.startswith("/configuration"):
        return "admin"
    return "operator"


def role_of(tokens: dict[str, str], header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    for known, role in tokens.items():
        if hmac.compare_digest(known.encode(), token.strip().encode()):
            return role
    return None


async def authorize(request: Request) -> None:
    """A dependency on every route but the health probes (async: it never blocks, and so costs
    no hop through the thread pool)."""
    tokens = request.app.state.services.settings.tokens
    if not tokens or request.url.path in OPEN_PATHS:
        return
    role = role_of(tokens, request.headers.get("authorization"))
    if role is None:
        raise Unauthorized("Authorization: send 'Bearer <token>' with a token from FERRY_TOKENS")
    needed = required_role(request.method, request.url.path)
    if RANK[role] < RANK[needed]:
        raise Forbidden(f"Authorization: role {role!r} may not {request.method} {request.url.path}; needs {needed}")
