"""Who is asking, whether they may, and a record of what they did.

- `token`: a bearer token from a file (a mounted Secret), compared in constant time, sent as
  `Authorization: Bearer ...`, or as a session cookie that /login sets (an HMAC of the token, never the token).
- `proxy`: the user is the identity header a reverse proxy (oauth2-proxy, ...) sets, believed only when the
  connection comes from a trusted proxy address; anything else is refused.
- `none`: everyone is "local" (the CLI binds loopback only in this mode).
Health probes (/healthz, /readyz) and the login page need no auth.

CSRF: every form POST must echo the `emtune_csrf` cookie (double-submit) as a form field or the
`X-CSRF-Token` header. JSON API POSTs instead must be `application/json`, which a cross-site page cannot send
without a CORS preflight that this app never grants.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from emtune.dashboard.settings import DashboardSettings, read_token, trusted_networks

audit_log = logging.getLogger("emtune.dashboard.audit")

SESSION_COOKIE = "emtune_session"
CSRF_COOKIE = "emtune_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
PUBLIC_PATHS = ("/healthz", "/readyz", "/login")


def audit(user: str, action: str, **details: Any) -> None:
    """One line per action: who did what to which run or schedule."""
    extra = " ".join(f"{key}={value}" for key, value in details.items() if value is not None)
    audit_log.info("user=%s action=%s %s", user, action, extra)


class Authenticator:
    def __init__(self, settings: DashboardSettings) -> None:
        self.mode = settings.auth
        self.user_header = settings.proxy_user_header
        self._networks = trusted_networks(settings.trusted_proxies) if settings.auth == "proxy" else []
        token = read_token(settings.token_file) if settings.auth == "token" else ""
        self._token = token.encode()
        self._session = hmac.new(self._token, b"emtune-dashboard-session", hashlib.sha256).hexdigest()

    def token_matches(self, candidate: str) -> bool:
        return hmac.compare_digest(candidate.encode(), self._token)

    def session_cookie(self) -> str:
        return self._session

    def user(self, request: Request) -> str | None:
        """The caller's identity, or None when not authenticated."""
        if self.mode == "none":
            return "local"
        if self.mode == "token":
            scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() == "bearer" and self.token_matches(credentials.strip()):
                return "token"
            cookie = request.cookies.get(SESSION_COOKIE, "")
            return "token" if hmac.compare_digest(cookie.encode(), self._session.encode()) else None
        peer = request.client.host if request.client else ""
        if not self._from_trusted_proxy(peer):
            return None
        return request.headers.get(self.user_header, "").strip() or None

    def _from_trusted_proxy(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self._networks)

    async def middleware(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
        request.state.csrf = csrf
        if request.url.path not in PUBLIC_PATHS:
            user = self.user(request)
            if user is None:
                return self._refuse(request)
            request.state.user = user
        response = await call_next(request)
        if request.cookies.get(CSRF_COOKIE) != csrf:
            response.set_cookie(CSRF_COOKIE, csrf, httponly=True, samesite="strict")
        return response

    def _refuse(self, request: Request) -> Response:
        peer = request.client.host if request.client else "?"
        audit("-", "denied", path=request.url.path, peer=peer, mode=self.mode)
        if self.mode == "token" and not request.url.path.startswith("/api/") and request.method == "GET":
            return _login_needed()
        detail = "authentication required" if self.mode == "token" else f"no {self.user_header} from a trusted proxy"
        return JSONResponse({"detail": detail}, status_code=401, headers=_challenge(self.mode))


def _challenge(mode: str) -> dict[str, str]:
    return {"WWW-Authenticate": 'Bearer realm="emtune"'} if mode == "token" else {}


def _login_needed() -> Response:
    page = (
        "<!doctype html><title>emtune: sign in</title><h1>Sign in</h1>"
        '<p>This dashboard needs its access token. <a href="/login">Sign in</a>.</p>'
    )
    return HTMLResponse(page, status_code=401, headers=_challenge("token"))


def current_user(request: Request) -> str:
    return str(getattr(request.state, "user", "-"))


async def checked_form(request: Request) -> dict[str, str]:
    """The POSTed form, once its CSRF token matches the cookie's; else 403."""
    from emtune.dashboard.forms import form_items

    form = await request.form()
    sent = request.headers.get(CSRF_HEADER) or str(form.get(CSRF_FIELD, ""))
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(sent.encode(), cookie.encode()):
        audit(current_user(request), "csrf-rejected", path=request.url.path)
        raise HTTPException(status_code=403, detail="missing or wrong CSRF token; reload the page and try again")
    return form_items([(key, str(value)) for key, value in form.multi_items()])
