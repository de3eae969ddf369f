"""Who may use the dashboard: the operator's password, the credentials check, the signed-in session and its
CSRF token. The session is Starlette's signed cookie (SameSite=strict, set up in app.py)."""

from __future__ import annotations

import hmac
import secrets

from starlette.requests import Request

from tracker.app import App
from tracker.config import WebSettings


def admin_password(app: App) -> str:
    """The configured password, else a one-time one written to the log: the dashboard never runs open."""
    configured = app.config.web.admin_password if app.config.web else ""
    if configured:
        return configured
    made = app.cache.setdefault("admin_password", secrets.token_urlsafe(12))
    return made


def credentials_ok(app: App, username: str, password: str) -> bool:
    """Both compared in constant time, and both always compared: the answer never tells which was wrong."""
    web = app.config.web or WebSettings()
    user_ok = hmac.compare_digest(username.encode(), web.admin_user.encode())
    password_ok = hmac.compare_digest(password.encode(), admin_password(app).encode())
    return user_ok & password_ok


def signed_in(request: Request) -> bool:
    return request.session.get("admin") is True


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str) or not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


def csrf_ok(request: Request, given: object) -> bool:
    expected = request.session.get("csrf")
    return (isinstance(expected, str) and bool(expected) and isinstance(given, str)
            and hmac.compare_digest(expected.encode(), given.encode()))
