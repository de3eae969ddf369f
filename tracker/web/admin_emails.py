"""The dashboard's email log, filtered by state or kind and paged, and the CSRF-protected button that
re-queues a dead, held or skipped email."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from emails.kinds import EMAIL_KINDS
from emails.outbox import RETRYABLE_STATES as RETRYABLE
from emails.outbox import requeue_email
from tracker.models import Email, EmailState, Order
from tracker.web.admin_pages import (
    PAGE_SIZE,
    admin_page,
    app_of,
    form_expired,
    message_page,
    page_links,
    page_number,
    param,
)
from tracker.web.auth import csrf_ok
from tracker.web.pages import small_form


def emails(request: Request) -> Response:
    with Session(app_of(request).engine) as session:
        kinds = sorted(set(EMAIL_KINDS) | set(session.execute(select(Email.kind).distinct()).scalars()))
        state = param(request, "state", [str(s) for s in EmailState])
        kind = param(request, "kind", kinds)
        number = page_number(request)
        query = (select(Email.id, Email.kind, Email.state, Email.shop, Email.to_address, Order.number.label("order"),
                        Email.shipment_id, Email.created_at, Email.due_at, Email.sent_at, Email.attempts,
                        Email.last_error)
                 .join(Order, Order.id == Email.order_id).order_by(Email.id.desc()))
        if state:
            query = query.where(Email.state == state)
        if kind:
            query = query.where(Email.kind == kind)
        rows = session.execute(query.offset((number - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)).mappings().all()
    filters = {"state": state, "kind": kind}
    return admin_page(request, "admin_emails.html", heading="Emails", rows=rows[:PAGE_SIZE], filters=filters,
                      states=[str(s) for s in EmailState], kinds=kinds, retryable=[str(s) for s in RETRYABLE],
                      page=number, **page_links("/admin/emails", filters, number, len(rows) > PAGE_SIZE))


async def retry(request: Request) -> Response:
    form = await small_form(request)
    if form is None or not csrf_ok(request, form.get("csrf")):
        return form_expired(request)
    app, email_id = app_of(request), request.path_params["id"]
    try:
        await run_in_threadpool(requeue_email, app.engine, email_id, app.now())
    except LookupError as exc:
        return message_page(request, 404, "Not found", str(exc))
    except ValueError as exc:
        return message_page(request, 409, "Not re-queued", str(exc))
    request.session["flash"] = f"Email {email_id} re-queued"
    return RedirectResponse("/admin/emails?state=dead", status_code=303)
