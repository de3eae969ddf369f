"""What every dashboard page shares: rendering with the session's state, the sign-in guard, query parameters
checked against what the page offers, and paging links."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from tracker.app import App
from tracker.web.auth import csrf_token, signed_in
from tracker.web.pages import page

LOGIN = "/admin/login"
PAGE_SIZE = 50


class BadRequest(Exception):
    """A query parameter outside what the page offers: answered 400 with the allowed values."""


def app_of(request: Request) -> App:
    return request.app.state.app


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else ""


def admin_page(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    is_signed_in = signed_in(request)
    return page(template, status_code, shop=None, signed_in=is_signed_in, when=_when,
                csrf=csrf_token(request) if is_signed_in else "", flash=request.session.pop("flash", None),
                **context)


def message_page(request: Request, status_code: int, title: str, message: str) -> Response:
    return admin_page(request, "admin_message.html", status_code, heading=title, message=message)


def form_expired(request: Request) -> Response:
    return message_page(request, 403, "Form expired", "This form is no longer valid. Reload the page and try again.")


def to_login() -> Response:
    return RedirectResponse(LOGIN, status_code=303)


def admin_only(handler: Callable) -> Callable:
    """Every route but the login form: no session, no data, a redirect to the login page. Plain `def`
    handlers (database work) run in a thread; a BadRequest from any handler is answered with a 400 page."""
    @wraps(handler)
    async def guarded(request: Request) -> Response:
        if not signed_in(request):
            return to_login()
        try:
            if inspect.iscoroutinefunction(handler):
                return await handler(request)
            return await run_in_threadpool(handler, request)
        except BadRequest as exc:
            return message_page(request, 400, "Bad request", str(exc))
    return guarded


def param(request: Request, name: str, allowed: list[str]) -> str:
    value = request.query_params.get(name, "")
    if value and value not in allowed:
        raise BadRequest(f"{name} must be one of: {', '.join(allowed)}")
    return value


def page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1") or "1"
    if not raw.isdigit() or int(raw) < 1:
        raise BadRequest("page must be a whole number from 1")
    return int(raw)


def page_links(path: str, filters: dict[str, str], number: int, more: bool) -> dict[str, str | None]:
    def url(n: int) -> str:
        return f"{path}?{urlencode({**{k: v for k, v in filters.items() if v}, 'page': n})}"
    return {"prev_url": url(number - 1) if number > 1 else None, "next_url": url(number + 1) if more else None}
