"""Who is asking, whether they may, and a record of what they did.

Every request, in every mode, first passes the trust boundary: its `Host` must be a name this server answers to
(the bind address, loopback names, `--allowed-hosts`), which defeats DNS rebinding; a state-changing request
sent by a browser must come from this origin (`Sec-Fetch-Site`, `Origin`), which defeats cross-site and
cross-port (cookie-tossing) forms.

- `token`: named bearer tokens from a file (a mounted Secret), compared in constant time, sent as
  `Authorization: Bearer ...`, or as a session cookie that /login sets: `name.expiry.nonce.mac`, the mac keyed by
  that user's token (never the token itself), so every replica checks it and rotating a token ends its sessions.
  Sessions expire, and /logout ends one.
- `proxy`: the user is the identity header a reverse proxy (oauth2-proxy, Kubeflow's Istio gateway, ...) sets,
  believed only when the connection comes from a trusted proxy address; anything else is refused.
- `none`: everyone is "local" (the CLI binds loopback only in this mode).
Health probes (/healthz, /readyz), the login page and its style sheet need no auth.

CSRF: every form POST carries a token that is an HMAC of the caller's session (the login session, else a
per-browser `emtune_sid` cookie and the proxy user), so a token from another session or a tossed cookie is
useless. JSON API POSTs instead must be `application/json`, which a cross-site page cannot send without a CORS
preflight that this app never grants.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from emtune.dashboard.settings import DashboardSettings, read_tokens, trusted_networks

audit_log = logging.getLogger("emtune.dashboard.audit")

SESSION_COOKIE = "emtune_session"
SID_COOKIE = "emtune_sid"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
PUBLIC_PATHS = ("/healthz", "/readyz", "/login", "/static/style.css")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
LOGIN_FAILURES_PER_MINUTE = 10
MAX_USER_LENGTH = 256
APP_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "frame-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": APP_CSP,
    "Cross-Origin-Opener-Policy": "same-origin",
}
_PLAIN = re.compile(r"[A-Za-z0-9._@:/+=-]+")


def _quoted(value: Any) -> str:
    """A value as one audit-line token: plain words as they are, anything else JSON-quoted (no newlines)."""
    text = str(value)
    return text if _PLAIN.fullmatch(text) else json.dumps(text)


def audit(user: str, action: str, **details: Any) -> None:
    """One line per action: who did what to which run or schedule; what users sent cannot break the line."""
    extra = " ".join(f"{key}={_quoted(value)}" for key, value in details.items() if value is not None)
    audit_log.info("user=%s action=%s %s", _quoted(user), action, extra)


def _host_name(host_header: str) -> str:
    """The name part of a Host header (`name`, `name:port`, `[v6]:port`), lower-cased; '' when malformed."""
    try:
        parts = urlsplit(f"//{host_header}")
        parts.port  # noqa: B018  # raises for a non-numeric port
    except ValueError:
        return ""
    name = (parts.hostname or "").lower()
    return f"[{name}]" if ":" in name else name


def _netloc(url: str) -> str:
    try:
        return urlsplit(url).netloc.lower()
    except ValueError:
        return ""


class Authenticator:
    def __init__(self, settings: DashboardSettings) -> None:
        self.mode = settings.auth
        self.user_header = settings.proxy_user_header
        self.secure = settings.secure_cookies
        self.session_s = int(settings.session_hours * 3600)
        self._hosts = settings.host_names()
        self._networks = trusted_networks(settings.trusted_proxies) if settings.auth == "proxy" else []
        self._tokens = read_tokens(settings.token_file) if settings.auth == "token" else {}
        self._csrf_key = secrets.token_bytes(32)
        self._revoked: set[str] = set()  # nonces of sessions ended by /logout
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------------ token mode
    def token_user(self, candidate: str) -> str | None:
        """The name whose token this is; every name is compared, in constant time."""
        found = None
        for name, token in self._tokens.items():
            if hmac.compare_digest(candidate.encode(), token.encode()):
                found = name
        return found

    def _session_mac(self, name: str, payload: str) -> str:
        return hmac.new(self._tokens[name].encode(), f"session:{payload}".encode(), hashlib.sha256).hexdigest()

    def new_session(self, name: str) -> str:
        payload = f"{name}.{int(time.time()) + self.session_s}.{secrets.token_hex(16)}"
        return f"{payload}.{self._session_mac(name, payload)}"

    def session_user(self, cookie: str) -> str | None:
        name, _, rest = cookie.partition(".")
        expires, _, rest = rest.partition(".")
        nonce, _, mac = rest.partition(".")
        if name not in self._tokens or not expires.isdigit() or not nonce or nonce in self._revoked:
            return None
        if int(expires) < time.time():
            return None
        good = self._session_mac(name, f"{name}.{expires}.{nonce}")
        return name if hmac.compare_digest(mac.encode(), good.encode()) else None

    def end_session(self, cookie: str) -> None:
        if self.session_user(cookie) is not None:
            self._revoked.add(cookie.split(".")[2])

    def login_allowed(self, peer: str) -> bool:
        """At most LOGIN_FAILURES_PER_MINUTE failed sign-ins per peer address per minute."""
        now = time.monotonic()
        with self._lock:
            failures = self._failures.setdefault(peer, deque())
            while failures and failures[0] < now - 60:
                failures.popleft()
            return len(failures) < LOGIN_FAILURES_PER_MINUTE

    def login_failed(self, peer: str) -> None:
        with self._lock:
            self._failures.setdefault(peer, deque()).append(time.monotonic())

    # ------------------------------------------------------------------------------------ identity
    def user(self, request: Request) -> str | None:
        """The caller's identity, or None when not authenticated."""
        if self.mode == "none":
            return "local"
        if self.mode == "token":
            scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() == "bearer":
                return self.token_user(credentials.strip())
            return self.session_user(request.cookies.get(SESSION_COOKIE, ""))
        peer = request.client.host if request.client else ""
        if not self._from_trusted_proxy(peer):
            return None
        user = request.headers.get(self.user_header, "").strip()
        return user if user and len(user) <= MAX_USER_LENGTH and user.isprintable() else None

    def _from_trusted_proxy(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self._networks)

    def csrf_token(self, request: Request) -> str:
        """The CSRF token of this caller's session: its login session, else its sid cookie (and proxy user)."""
        binding = request.cookies.get(SESSION_COOKIE, "") if self.mode == "token" else ""
        binding += "|" + request.state.sid + "|" + str(getattr(request.state, "user", ""))
        return hmac.new(self._csrf_key, binding.encode(), hashlib.sha256).hexdigest()

    # ------------------------------------------------------------------------------------ boundary
    def _foreign(self, request: Request) -> tuple[int, str] | None:
        """(status, why) when this request crosses the trust boundary, else None."""
        host = request.headers.get("host", "")
        if _host_name(host) not in self._hosts:
            return 421, f"Host {host[:100]!r} is not one this dashboard answers to (see --allowed-hosts)"
        if request.method in SAFE_METHODS:
            return None
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return 403, f"a {site[:20]!r} request may not change anything here"
        origin = request.headers.get("origin")
        if origin is not None and _netloc(origin) != host.lower():
            return 403, f"Origin {origin[:100]!r} is not this dashboard"
        return None

    async def middleware(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        foreign = self._foreign(request)
        if foreign:
            status, reason = foreign
            audit("-", "refused", path=request.url.path, reason=reason)
            return _with_headers(PlainTextResponse(reason, status_code=status))
        sid = request.cookies.get(SID_COOKIE, "")
        request.state.sid = sid if re.fullmatch(r"[A-Za-z0-9_-]{20,64}", sid) else secrets.token_urlsafe(24)
        if request.url.path not in PUBLIC_PATHS:
            user = self.user(request)
            if user is None:
                return _with_headers(self._refuse(request))
            request.state.user = user
            request.state.by_bearer = request.headers.get("authorization", "").lower().startswith("bearer ")
        request.state.csrf = self.csrf_token(request)
        response = await call_next(request)
        if request.cookies.get(SID_COOKIE) != request.state.sid:
            self.set_cookie(response, SID_COOKIE, request.state.sid, max_age=None)
        return _with_headers(response)

    def set_cookie(self, response: Response, name: str, value: str, max_age: int | None) -> None:
        response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="strict", secure=self.secure)

    def _refuse(self, request: Request) -> Response:
        peer = request.client.host if request.client else "?"
        audit("-", "denied", path=request.url.path, peer=peer, mode=self.mode)
        if self.mode == "token" and not request.url.path.startswith("/api/") and request.method == "GET":
            return _login_needed()
        detail = "authentication required" if self.mode == "token" else f"no {self.user_header} from a trusted proxy"
        return JSONResponse({"detail": detail}, status_code=401, headers=_challenge(self.mode))


def _with_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _challenge(mode: str) -> dict[str, str]:
    return {"WWW-Authenticate": 'Bearer realm="emtune"'} if mode == "token" else {}


def _login_needed() -> Response:
    page = (
        '<!doctype html><title>emtune: sign in</title><link rel="stylesheet" href="/static/style.css">'
        '<main class="login"><h1>Sign in</h1>'
        '<p>This dashboard needs its access token. <a href="/login">Sign in</a>.</p></main>'
    )
    return HTMLResponse(page, status_code=401, headers=_challenge("token"))


def current_user(request: Request) -> str:
    return str(getattr(request.state, "user", "-"))


def check_csrf(request: Request, sent: str) -> None:
    """403 unless `sent` is this session's CSRF token (a bearer-token caller needs none: no browser sends one)."""
    if getattr(request.state, "by_bearer", False):
        return
    if not hmac.compare_digest(sent.encode(), str(request.state.csrf).encode()):
        audit(current_user(request), "csrf-rejected", path=request.url.path)
        raise HTTPException(status_code=403, detail="missing or wrong CSRF token; reload the page and try again")


async def checked_form(request: Request) -> dict[str, str]:
    """The POSTed form, once its CSRF token matches the session's; else 403."""
    from emtune.dashboard.forms import form_items

    form = await request.form()
    check_csrf(request, request.headers.get(CSRF_HEADER) or str(form.get(CSRF_FIELD, "")))
    return form_items([(key, str(value)) for key, value in form.multi_items()])
