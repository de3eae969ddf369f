"""The adapter registries: adding a courier or a marketplace is one module and one line here."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from carriers import aftership, detect, dhl, fedex, orderfile, sandbox, shopify, ups, usps, woocommerce
from carriers.base import Courier, Marketplace
from tracker.clock import Clock
from tracker.settings import Section


class Account(Protocol):
    """An account as the config names it (tracker.config.AccountSettings is one): adapters read their own
    keys from `section`, so they never see the rest of the config."""

    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def section(self) -> Section: ...


# Each adapter module's factory: (account name, its [couriers.<name>] / [marketplaces.<name>] table, clock).
CourierFactory = Callable[[str, Section, Clock], Courier]
MarketplaceFactory = Callable[[str, Section, Clock], Marketplace]

COURIERS: dict[str, CourierFactory] = {
    "sandbox": sandbox.courier_from_settings,
    "dhl": dhl.courier_from_settings,
    "ups": ups.courier_from_settings,
    "fedex": fedex.courier_from_settings,
    "usps": usps.courier_from_settings,
    "aftership": aftership.courier_from_settings,
}

MARKETPLACES: dict[str, MarketplaceFactory] = {
    "sandbox": sandbox.marketplace_from_settings,
    "shopify": shopify.marketplace_from_settings,
    "woocommerce": woocommerce.marketplace_from_settings,
    "orderfile": orderfile.marketplace_from_settings,
}

# Marketplace types whose adapter also creates discount codes (carriers.base.CouponIssuer): the shops a
# resell coupon can be made in ([emails.coupons] source).
COUPON_ISSUERS = ("shopify", "woocommerce")

# Free-text courier names as marketplaces write them → courier type: the literal table lives beside the
# number formats in carriers/detect.py (add a new courier's names there); compared after `normalize_name`.
ALIASES: dict[str, str] = detect.ALIASES
AGGREGATOR_TYPE = "aftership"  # tracks couriers we have no account for; never the simulated sandbox



def _build(registry: Mapping[str, Callable], what: str, account: Account, clock: Clock):
    factory = registry.get(account.type)
    if factory is None:
        known = ", ".join(sorted(registry))
        raise account.section.error("type", f"unknown {what} type {account.type!r}; known: {known}")
    return factory(account.name, account.section, clock)


def build_courier(account: Account, clock: Clock) -> Courier:
    return _build(COURIERS, "courier", account, clock)


def build_marketplace(account: Account, clock: Clock) -> Marketplace:
    return _build(MARKETPLACES, "marketplace", account, clock)


def resolve_courier(name: str, tracking_number: str, accounts: Mapping[str, Account]) -> str | None:
    """Which courier account tracks this parcel, or None if unsure; `explain_courier` says why."""
    return explain_courier(name, tracking_number, accounts)[0]


def explain_courier(name: str | None, tracking_number: str,
                    accounts: Mapping[str, Account]) -> tuple[str | None, str]:
    """The courier account for a parcel and the reason, in this order: the name is an account's name; the
    name is an alias of a courier type, else the number's format names one (`carriers.detect`); then the
    one account of that type, else the one aggregator account. None when any step is unsure: a parcel
    polled at the wrong courier stays silent for weeks, one without a courier shows up as a problem."""
    spoken = " ".join((name or "").split()).lower()
    by_name = {account.lower(): account for account in accounts}
    if spoken in by_name:
        return by_name[spoken], f"courier name {name!r} is the account {by_name[spoken]!r}"
    found = detect.detect_courier(name, tracking_number)
    if found.courier_type is None:
        return None, found.reason
    return _account_of_type(found, accounts)


def _account_of_type(found: detect.Detection, accounts: Mapping[str, Account]) -> tuple[str | None, str]:
    wanted = found.courier_type
    same = sorted(n for n, a in accounts.items() if a.type == wanted)
    if len(same) == 1:
        return same[0], f"{found.reason}; {same[0]!r} is the {wanted} account"
    if same:
        return None, (f"{found.reason}; several {wanted} accounts ({', '.join(same)}): write the account's "
                      "name as the courier name to choose one")
    aggregators = sorted(n for n, a in accounts.items() if a.type == AGGREGATOR_TYPE)
    if not aggregators or wanted == "sandbox":
        return None, f"{found.reason}; no {wanted} account under [couriers]"
    if len(aggregators) > 1:
        return None, (f"{found.reason}; no {wanted} account, and several {AGGREGATOR_TYPE} accounts "
                      f"({', '.join(aggregators)}) to choose from")
    return aggregators[0], f"{found.reason}; no {wanted} account, so {AGGREGATOR_TYPE} account {aggregators[0]!r}"
