"""The addresses of the web side's pages, as emails write them (the web routes import TRACK from here)."""

from __future__ import annotations

from emails.tokens import make_token
from tracker.config import Config, ShopSettings

TRACK = "track"


def base_url(config: Config, shop: ShopSettings) -> str:
    """Where customers reach this shop's pages: the shop's public_url, else the [web] one."""
    if shop.public_url:
        return shop.public_url.rstrip("/")
    return config.web.public_url.rstrip("/") if config.web else ""


def tracking_page_url(config: Config, shop: ShopSettings, secret: bytes, shipment_id: int) -> str | None:
    """None when no web side is configured: emails then link to the courier's own page."""
    if config.web is None:
        return None
    return f"{base_url(config, shop)}/t/{make_token(secret, TRACK, str(shipment_id))}"
