"""The open pixel and the click redirect written into emails by emails/engagement.py.

The pixel answers the same transparent GIF whatever the token, so it tells nobody whether a token or an
email exists; only a token we signed records an open. The click redirect goes to exactly the URL inside the
signed token and nowhere else: a forged or altered token (or one for another purpose) gets a 400 page,
never a redirect, and query strings such as `?u=` are ignored.

Duplicates: a mail client fetching the pixel again, a double click or a link scanner racing the customer
should not count twice, so an open is recorded at most once per email per minute, and a click at most once
per email and URL per minute. Two requests in the same instant may both pass the check; the counts are for
conditions ("any click?") and dashboards, where that is harmless.
"""

from __future__ import annotations

import logging
from base64 import b64decode
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from emails.engagement import CLICK, OPEN, read_click, read_open
from tracker.models import Email, EmailEvent
from tracker.web.pages import refusal

log = logging.getLogger("trackmail.web.engagement")
DEDUPE_WINDOW = timedelta(minutes=1)
PIXEL = b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")  # 1×1, transparent
NO_CACHE = {"Cache-Control": "no-store, no-cache, must-revalidate, private", "Pragma": "no-cache"}


def record(session: Session, email_id: int, kind: str, now: datetime, url: str = "") -> bool:
    """Store one open or click unless the same was stored within the window, or the email is gone.
    True if a row was added."""
    if session.get(Email, email_id) is None:
        return False
    recent = session.execute(select(EmailEvent.id).where(
        EmailEvent.email_id == email_id, EmailEvent.kind == kind, EmailEvent.url == url,
        EmailEvent.at > now - DEDUPE_WINDOW).limit(1)).first()
    if recent is not None:
        return False
    session.add(EmailEvent(email_id=email_id, kind=kind, url=url, at=now))
    return True


def _record(request: Request, email_id: int, kind: str, url: str = "") -> None:
    app = request.app.state.app
    with Session(app.engine) as session:
        if record(session, email_id, kind, app.now(), url):
            session.commit()


def open_pixel(request: Request) -> Response:
    app = request.app.state.app
    email_id = read_open(app.outbox.secret, request.path_params["token"])
    if email_id is not None:
        try:
            _record(request, email_id, OPEN)
        except Exception:  # an image in an inbox must load even if the database hiccups
            log.exception("could not record an open of email %s", email_id)
    return Response(PIXEL, media_type="image/gif", headers=NO_CACHE)


def click(request: Request) -> Response:
    app = request.app.state.app
    signed = read_click(app.outbox.secret, request.path_params["token"])
    if signed is None:
        return refusal(request, "Link not valid", "This link is not valid or has been altered. "
                                                  "Please use the link in the email you received.", 400)
    email_id, url = signed
    try:
        _record(request, email_id, CLICK, url)
    except Exception:  # the customer still gets where the email promised
        log.exception("could not record a click on email %s", email_id)
    return RedirectResponse(url, status_code=302, headers=NO_CACHE)


def routes() -> list[Route]:
    return [Route("/o/{token}.gif", open_pixel), Route("/c/{token}", click)]
