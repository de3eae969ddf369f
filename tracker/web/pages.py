"""HTML pages: one autoescaped Jinja2 environment over tracker/web/templates, and a few words per locale."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from emails.render import format_date, format_datetime, format_money

FOLDER = Path(__file__).parent / "templates"

# The words the pages say, per language; emails have their own templates per locale.
WORDS: dict[str, dict[str, str]] = {
    "en": {"track": "Track your parcel", "order": "Order", "status": "Status", "eta": "Estimated delivery",
           "delivered": "Delivered", "history": "Tracking history", "items": "Items", "courier_link":
           "See it on the courier's site", "no_events": "No news from the courier yet.", "lookup": "Find your order",
           "lookup_help": "Enter your order number and the email address or postcode you ordered with.",
           "order_number": "Order number", "email_or_postcode": "Email or postcode", "find": "Find my order",
           "not_found": "We could not find an order with those details.", "tracking_number": "Tracking number"},
    "de": {"track": "Sendung verfolgen", "order": "Bestellung", "status": "Status",
           "eta": "Voraussichtliche Zustellung", "delivered": "Zugestellt", "history": "Sendungsverlauf",
           "items": "Artikel", "courier_link": "Beim Paketdienst ansehen",
           "no_events": "Noch keine Nachricht vom Paketdienst.", "lookup": "Bestellung finden",
           "lookup_help": "Geben Sie Ihre Bestellnummer und Ihre E-Mail-Adresse oder Postleitzahl ein.",
           "order_number": "Bestellnummer", "email_or_postcode": "E-Mail oder Postleitzahl",
           "find": "Bestellung finden", "not_found": "Wir haben keine Bestellung mit diesen Angaben gefunden.",
           "tracking_number": "Sendungsnummer"},
    "fr": {"track": "Suivre mon colis", "order": "Commande", "status": "Statut", "eta": "Livraison estimée",
           "delivered": "Livré", "history": "Historique du suivi", "items": "Articles",
           "courier_link": "Voir sur le site du transporteur", "no_events": "Pas encore de nouvelles du transporteur.",
           "lookup": "Retrouver ma commande",
           "lookup_help": "Saisissez votre numéro de commande et l'adresse e-mail ou le code postal de la commande.",
           "order_number": "Numéro de commande", "email_or_postcode": "E-mail ou code postal",
           "find": "Retrouver ma commande", "not_found": "Aucune commande ne correspond à ces informations.",
           "tracking_number": "Numéro de suivi"},
}


def words(locale: str | None) -> dict[str, str]:
    base = (locale or "en").replace("-", "_").split("_")[0].lower()
    return {**WORDS["en"], **WORDS.get(base, {})}


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(FOLDER), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    env.filters.update(money=format_money, date=format_date, datetime=format_datetime)
    return env


def page(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = environment().get_template(name).render(**context)
    return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})


def safe_url(url: str | None) -> str:
    """Only web addresses become links: a `javascript:` URL from a shop's data must never be clickable."""
    return url if url and url.lower().startswith(("http://", "https://")) else ""


async def small_form(request: Request):
    """A form of a few short fields, or None: no request may make the daemon hold megabytes in memory."""
    try:
        form = await request.form(max_files=0, max_fields=8, max_part_size=4096)
    except Exception:  # Starlette raises several kinds for oversize or malformed bodies
        return None
    return form


def refusal(request: Request, title: str, message: str, status_code: int) -> HTMLResponse:
    """A clear answer for a bad or forged link: never a stack trace."""
    return page("message.html", status_code, title=title, message=message, shop=None)
