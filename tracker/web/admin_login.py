"""Signing in to the dashboard and out of it.

Failed logins are throttled per client address in this process's memory: a restart forgets them, several
daemons count separately, and behind a reverse proxy every client shares the proxy's address (let the proxy
limit too).
"""

from __future__ import annotations

import math
import time

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from tracker.web.admin_pages import admin_page, app_of, form_expired, to_login
from tracker.web.auth import credentials_ok, csrf_ok, csrf_token, signed_in
from tracker.web.pages import small_form
from tracker.web.throttle import Throttle


def _throttle(request: Request) -> Throttle:
    state = request.app.state
    if not hasattr(state, "admin_throttle"):
        state.admin_throttle = Throttle()
    return state.admin_throttle


async def login(request: Request) -> Response:
    if request.method == "GET":
        return RedirectResponse("/admin", 303) if signed_in(request) else admin_page(request, "admin_login.html",
                                                                                     heading="Sign in", error=None)
    form = await small_form(request)  # read before the throttle check: no guess may slip past it mid-read
    if form is None:
        return admin_page(request, "admin_login.html", 400, heading="Sign in", error="That form could not be read.")
    client = request.client.host if request.client else "unknown"
    throttle, now = _throttle(request), time.monotonic()
    wait = throttle.wait(client, now)
    if wait:
        minutes = math.ceil(wait / 60)
        response = admin_page(request, "admin_login.html", 429, heading="Sign in", error=(
            f"Too many failed sign-ins from your address. Try again in {minutes} minute{'s' * (minutes > 1)}."))
        response.headers["Retry-After"] = str(math.ceil(wait))
        return response
    username, password = str(form.get("username", "")), str(form.get("password", ""))
    if not credentials_ok(app_of(request), username, password):
        throttle.failed(client, now)
        return admin_page(request, "admin_login.html", 401, heading="Sign in", error="Wrong user name or password.")
    throttle.forget(client)
    request.session.clear()  # a fresh session (and CSRF token) for the signed-in operator
    request.session["admin"] = True
    csrf_token(request)
    return RedirectResponse("/admin", status_code=303)


async def logout(request: Request) -> Response:
    form = await small_form(request)
    if form is None or not csrf_ok(request, form.get("csrf")):
        return form_expired(request)
    request.session.clear()
    return to_login()
