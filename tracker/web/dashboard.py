"""The operator dashboard under /admin: figures per email kind, shipments with their whole history, the email
log with a retry button, and email previews with sample data.

Only the login form answers without the signed-in session; every other route redirects there, so no customer
data is shown to anybody who has not logged in. The session is Starlette's signed cookie (SameSite=strict, set
up in app.py); forms that change something also carry a per-session CSRF token. Failed logins are throttled per
client address in this process's memory: a restart forgets them, several daemons count separately, and
behind a reverse proxy every client shares the proxy's address (let the proxy limit too).

This module is the dashboard's routes; the pages are admin_overview.py, admin_shipments.py, admin_emails.py
and admin_preview.py, signing in is admin_login.py (over auth.py), and what they share is admin_pages.py.
"""

from __future__ import annotations

from starlette.routing import Route

from tracker.web.admin_emails import emails, retry
from tracker.web.admin_login import login, logout
from tracker.web.admin_overview import overview
from tracker.web.admin_pages import LOGIN, admin_only
from tracker.web.admin_preview import preview
from tracker.web.admin_shipments import shipment_detail, shipments


def routes() -> list[Route]:
    signed_in_routes = [
        ("/admin", overview, ["GET"]),
        ("/admin/shipments", shipments, ["GET"]),
        ("/admin/shipments/{id:int}", shipment_detail, ["GET"]),
        ("/admin/emails", emails, ["GET"]),
        ("/admin/emails/{id:int}/retry", retry, ["POST"]),
        ("/admin/preview", preview, ["GET"]),
        ("/admin/logout", logout, ["POST"]),
    ]
    return [Route(LOGIN, login, methods=["GET", "POST"]),
            *(Route(path, admin_only(handler), methods=methods) for path, handler, methods in signed_in_routes)]
