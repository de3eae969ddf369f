"""Resell coupons created in the merchant's own shop, and `[emails.coupons]`, which says where codes come from.

`MarketplaceCoupons` is the glue between the outbox's CouponSource and a marketplace adapter that can create
codes (carriers.base.CouponIssuer: Shopify, WooCommerce). It knows both sides, so it lives with the jobs:
emails/ never sees an adapter, and carriers/ never sees the outbox. The code is derived from the email's key
(emails.coupons.derive_code), so a retry asks the shop for the same code, and the adapter's errors become the
outbox's: TransientError → TransientCouponError (tried again later), AuthError → CouponAuthError, anything
else → CouponError (the email is held until a person acts).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from carriers import COUPON_ISSUERS, build_marketplace
from carriers.base import AuthError, CarrierError, CouponIssuer, CouponSpec, TransientError
from emails.coupons import (
    CouponAuthError,
    CouponError,
    CouponRequest,
    CouponSource,
    IssuedCoupon,
    LocalCoupons,
    PoolCoupons,
    TransientCouponError,
    derive_code,
    request_discount,
)
from tracker.clock import Clock, system_clock

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from tracker.config import AccountSettings
    from tracker.settings import Section

SOURCES = ("local", "pool", *COUPON_ISSUERS)
KEYS = frozenset({"source", "pool_file", "marketplace"})


class MarketplaceCoupons:
    """Each code created in the shop by its marketplace adapter, under the account's own credentials."""

    def __init__(self, marketplace: CouponIssuer, secret: bytes, source: str) -> None:
        self.marketplace = marketplace
        self.secret = secret
        self.source = source  # the marketplace type, as IssuedCoupon.source and the Coupon row say

    async def issue(self, request: CouponRequest) -> IssuedCoupon:
        discount = request_discount(request, self.marketplace.name)
        spec = CouponSpec(code=derive_code(self.secret, request.key), reference=request.key,
                          percent=discount.percent, value=discount.value, starts_at=request.now,
                          expires_at=request.expires_at, customer_email=request.customer_email)
        try:
            issued = await self.marketplace.create_code(spec)
        except TransientError as exc:
            raise _as(TransientCouponError, exc, retry_after=exc.retry_after) from exc
        except AuthError as exc:
            raise _as(CouponAuthError, exc) from exc
        except CarrierError as exc:
            raise _as(CouponError, exc) from exc
        return IssuedCoupon(issued.code, request.discount, issued.expires_at, self.source)

    async def aclose(self) -> None:
        await self.marketplace.aclose()


def _as(kind: type[CouponError], error: CarrierError, **extra: float | None) -> CouponError:
    """The adapter's error as the outbox's, keeping its words (they already name the account) and excerpt."""
    made = kind(str(error), **extra)  # type: ignore[arg-type]
    made.source, made.status_code, made.excerpt = error.source, error.status_code, error.excerpt
    return made


# ── From config: [emails.coupons] ─────────────────────────────────────────────────────────────────────────


def coupon_source_from_settings(section: Section, secret: bytes, engine: Engine,
                                marketplaces: Mapping[str, AccountSettings],
                                clock: Clock = system_clock) -> CouponSource:
    """`[emails.coupons]`: source = "local" (default) | "pool" | a shop type whose adapter creates codes
    ("shopify", "woocommerce"); pool_file (relative to the config file) for a pool; marketplace (a
    [marketplaces.<name>] account of the source's type, whose credentials are used; optional when there is
    exactly one such account) for a shop."""
    section.check_keys(KEYS)
    source = section.str("source", "local")
    if source not in SOURCES:
        raise section.error("source", f"unknown coupon source {source!r}; known: {', '.join(SOURCES)}")
    reads = {"local": set(), "pool": {"pool_file"}}.get(source, {"marketplace"})
    for key in sorted(KEYS - {"source"} - reads):
        if key in section.data:
            raise section.error(key, f"is not read when source = {source!r}; remove it")
    if source == "local":
        return LocalCoupons(secret)
    if source == "pool":
        return _pool(section, engine)
    account = _account(section, source, marketplaces)
    marketplace = build_marketplace(account, clock)
    if not isinstance(marketplace, CouponIssuer):  # pragma: no cover - COUPON_ISSUERS names only such types
        raise section.error("source", f"{source} accounts cannot create discount codes")
    return MarketplaceCoupons(marketplace, secret, source)


def _pool(section: Section, engine: Engine) -> PoolCoupons:
    value = section.str("pool_file").strip()
    if not value:
        raise section.error("pool_file", "must name the file of codes, one per line")
    path = Path(value).expanduser()
    path = path if path.is_absolute() else Path(section.file).parent / path
    if not path.is_file():
        raise section.error("pool_file", f"file {path} does not exist")
    pool = PoolCoupons(path, engine)
    try:
        count = len(pool.codes())
    except CouponError as exc:
        raise section.error("pool_file", str(exc)) from None
    if count == 0:
        raise section.error("pool_file", f"file {path} holds no codes (one per line; '#' starts a comment)")
    return pool


def _account(section: Section, source: str, marketplaces: Mapping[str, AccountSettings]) -> AccountSettings:
    same = sorted(name for name, account in marketplaces.items() if account.type == source)
    if "marketplace" not in section.data:
        if len(same) == 1:
            return marketplaces[same[0]]
        found = f"there are {len(same)} ({', '.join(same)})" if same else "there is none"
        raise section.error("marketplace", f"is required: name the [marketplaces.<name>] {source} account whose "
                                           f"credentials create the codes ({found})")
    name = section.str("marketplace")
    account = marketplaces.get(name)
    if account is None:
        known = ", ".join(sorted(marketplaces)) or "none"
        raise section.error("marketplace", f"names no [marketplaces.{name}] account (known: {known})")
    if account.type != source:
        raise section.error("marketplace", f"{name!r} is a {account.type} account; source = {source!r} needs a "
                                           f"{source} account")
    return account
