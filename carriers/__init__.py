"""The adapter registries: adding a courier or a marketplace is one module and one line here."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from carriers import sandbox
from carriers.base import Courier, Marketplace
from tracker.clock import Clock
from tracker.config import AccountSettings

CourierFactory = Callable[[AccountSettings, Clock], Courier]
MarketplaceFactory = Callable[[AccountSettings, Clock], Marketplace]

COURIERS: dict[str, CourierFactory] = {
    "sandbox": sandbox.courier_from_settings,
}

MARKETPLACES: dict[str, MarketplaceFactory] = {
    "sandbox": sandbox.marketplace_from_settings,
}

# Free-text courier names as marketplaces write them → courier type. Compared lower-case, spaces squeezed.
ALIASES: dict[str, str] = {
    "sandbox": "sandbox",
    "sandbox express": "sandbox",
}

COMMON_KEYS = frozenset({"type", "shop", "lookback"})


def _build(registry: Mapping[str, Callable], what: str, account: AccountSettings, clock: Clock):
    factory = registry.get(account.type)
    if factory is None:
        known = ", ".join(sorted(registry))
        raise account.section.error("type", f"unknown {what} type {account.type!r}; known: {known}")
    return factory(account, clock)


def build_courier(account: AccountSettings, clock: Clock) -> Courier:
    return _build(COURIERS, "courier", account, clock)


def build_marketplace(account: AccountSettings, clock: Clock) -> Marketplace:
    return _build(MARKETPLACES, "marketplace", account, clock)


def resolve_courier(name: str, tracking_number: str, accounts: Mapping[str, AccountSettings]) -> str | None:
    """Which courier account tracks this parcel: by account name, then by alias → type. None if unsure."""
    spoken = re.sub(r"\s+", " ", name.strip().lower())
    if spoken in accounts:
        return spoken
    wanted = ALIASES.get(spoken)
    matches = [n for n, a in accounts.items() if a.type == wanted]
    if len(matches) == 1:
        return matches[0]
    return None
