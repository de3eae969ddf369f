"""Engagement tracking: which emails were opened and which links were clicked, and the flow conditions
that branch on it ("send the reminder only if nobody clicked the coupon email").

Every outgoing link in an email's HTML is rewritten to `{base_url}/c/{token}`, where the token signs the
email id *and* the destination URL: the redirect endpoint reads its target from the signature, so it cannot
be turned into an open redirect, and a click counts for exactly one email. A 1×1 pixel at `/o/{token}.gif`
records opens. Opens are unreliable (image blocking hides them, Apple Mail Privacy Protection fetches every
pixel), so the flow conditions look at clicks only; clicks can be inflated too by mail scanners that follow
links, which errs on the side of *not* sending a reminder.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlmodel import Session

from emails.tokens import make_token, read_id, read_token
from tracker.flows import Condition
from tracker.models import Customer, Email, EmailEvent, EmailState, Order

CLICK = "click"
OPEN = "open"
UNSUBSCRIBE_PATH = "/unsubscribe/"

# An opening <a> tag; quoted attribute values may contain ">".
_ANCHOR = re.compile(r"""<a\b(?:[^>"']|"[^"]*"|'[^']*')*>""", re.IGNORECASE)
# Its href attribute (not data-href), double-, single- or un-quoted.
# One attribute of a tag: walking them in order means an `href=` inside another attribute's value (a customer
# name in a title, say) is never taken for the link itself.
_ATTRIBUTE = re.compile(r"""\s+([^\s"'>/=]+)(?:(\s*=\s*)(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?""")
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


def click_url(base_url: str, secret: bytes, email_id: int, url: str) -> str:
    return f"{base_url.rstrip('/')}/c/{make_token(secret, CLICK, f'{email_id}|{url}')}"


def open_url(base_url: str, secret: bytes, email_id: int) -> str:
    return f"{base_url.rstrip('/')}/o/{make_token(secret, OPEN, str(email_id))}.gif"


def read_click(secret: bytes, token: str) -> tuple[int, str] | None:
    """The email id and destination a click token was signed for, or None for anything we did not make.
    Only http(s) destinations are ever signed; anything else is refused as well, to be sure."""
    value = read_token(secret, CLICK, token)
    if value is None:
        return None
    email_id, separator, url = value.partition("|")
    if not separator or not email_id.isdigit() or not _is_web_link(url):
        return None
    return int(email_id), url


def read_open(secret: bytes, token: str) -> int | None:
    return read_id(secret, OPEN, token)


def _is_web_link(url: str) -> bool:
    return url.lower().startswith(("http://", "https://"))


def _tracked(url: str, base_url: str) -> bool:
    """Web links except the unsubscribe link (it must work without detours, RFC 8058 and the law) and links
    already pointing at our own click or open endpoints (instrumenting twice changes nothing)."""
    if not _is_web_link(url) or UNSUBSCRIBE_PATH in urlsplit(url).path:
        return False
    return not url.startswith((f"{base_url}/c/", f"{base_url}/o/"))


def _href(tag: str) -> re.Match[str] | None:
    position = 2  # after "<a"
    while (match := _ATTRIBUTE.match(tag, position)) is not None:
        if match.group(1).lower() == "href" and match.group(2) is not None:
            return match
        position = match.end()
    return None


def _rewrite_anchor(tag: str, *, base_url: str, secret: bytes, email_id: int) -> str:
    match = _href(tag)
    if match is None:
        return tag
    raw = next(group for group in match.groups()[2:] if group is not None)
    url = html.unescape(raw).strip()  # the address a browser would follow: &amp; is &
    if not _tracked(url, base_url):
        return tag
    new = html.escape(click_url(base_url, secret, email_id, url), quote=True)
    prefix = tag[:match.start()] + tag[match.start():match.start(2)]  # the whitespace and the name "href"
    return f'{prefix}{match.group(2)}"{new}"{tag[match.end():]}'


def _add_pixel(text: str, pixel: str) -> str:
    ends = list(_BODY_END.finditer(text))
    if not ends:
        return text + pixel
    at = ends[-1].start()
    return text[:at] + pixel + text[at:]


def instrument(text: str, *, base_url: str, secret: bytes, email_id: int, enabled: bool = True) -> str:
    """The rendered HTML with its web links sent through the click redirect and an open pixel added.

    Unchanged when tracking is off or there is no web side (`base_url` empty) to answer the links."""
    base_url = base_url.rstrip("/")
    if not enabled or not base_url:
        return text
    text = _ANCHOR.sub(lambda m: _rewrite_anchor(m.group(0), base_url=base_url, secret=secret,
                                                 email_id=email_id), text)
    src = html.escape(open_url(base_url, secret, email_id), quote=True)
    return _add_pixel(text, f'<img src="{src}" width="1" height="1" alt="" style="display:none">')


# Flow conditions, with the signature of emails.conditions.CHECKS.

def previous_step(session: Session, email: Email) -> Email | None:
    """The email of the step before this one, for the same order and flow."""
    return session.execute(
        select(Email).where(Email.order_id == email.order_id, Email.flow == email.flow, Email.step < email.step)
        .order_by(Email.step.desc())
    ).scalars().first()


def _clicks_on_previous(session: Session, email: Email) -> tuple[Email | None, int]:
    previous = previous_step(session, email)
    if previous is None or previous.state is not EmailState.SENT:
        return None, 0
    clicks = session.execute(select(EmailEvent.id).where(EmailEvent.email_id == previous.id,
                                                         EmailEvent.kind == CLICK).limit(1)).first()
    return previous, int(clicks is not None)


def no_click(session: Session, email: Email, order: Order, customer: Customer, condition: Condition,
             now: datetime) -> str | None:
    """Holds when the previous step's email was sent and none of its links was clicked."""
    previous, clicks = _clicks_on_previous(session, email)
    if previous is None:
        return "the previous step of this flow was not sent"
    return f"the customer clicked a link in the {previous.kind} email" if clicks else None


def clicked(session: Session, email: Email, order: Order, customer: Customer, condition: Condition,
            now: datetime) -> str | None:
    """Holds when a link in the previous step's email was clicked."""
    previous, clicks = _clicks_on_previous(session, email)
    if previous is None:
        return "the previous step of this flow was not sent"
    return None if clicks else f"the customer clicked no link in the {previous.kind} email"


CHECKS: dict[str, Callable[..., str | None]] = {"no_click": no_click, "clicked": clicked}
DESCRIPTIONS = {
    "no_click": "no link in the previous step's email was clicked",
    "clicked": "a link in the previous step's email was clicked",
}
