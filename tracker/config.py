"""Load config.toml into typed settings. Secrets come from ${ENV} references; every error names its key."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from datetime import date, time, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from emails.discount import parse_discount
from emails.kinds import EMAIL_KINDS
from tracker.calendar import DAY_NAMES, ShopCalendar
from tracker.flows import Flow, builtin_flows, parse_flows
from tracker.settings import ConfigError, Section

TRANSPORTS = ("outbox", "smtp", "postmark")
DEFAULT_CONFIG_NAME = "config.toml"


@dataclass(frozen=True)
class ShopSettings:
    key: str
    name: str
    sender: str  # "Name <address>"
    url: str = ""
    reply_to: str = ""
    logo_url: str = ""
    primary_color: str = "#1f6feb"
    accent_color: str = "#0b3d91"
    text_color: str = "#1f2328"
    background_color: str = "#f4f5f7"
    font_family: str = "Helvetica, Arial, sans-serif"
    support_email: str = ""
    alerts_email: str = ""  # the merchant's daily digest of problem parcels (default: support_email)
    footer: str = ""
    review_url: str = ""
    public_url: str = ""
    timezone: str = "UTC"  # the shop's own; a customer's comes from their country when we know it
    transport: str = ""  # overrides [emails] transport for this shop's emails
    templates_dir: Path | None = None
    social: tuple[tuple[str, str], ...] = ()  # (network name, profile URL), in the order written
    calendar: ShopCalendar = field(default_factory=ShopCalendar)  # business_days, holidays
    related_products: tuple[dict, ...] = ()  # suggested when the shop's history has too little to go on


@dataclass(frozen=True)
class AccountSettings:
    """A marketplace or courier account; `options` are the adapter's own keys, checked by the adapter."""

    name: str
    type: str
    shop: str
    section: Section
    marketing_to_proxy: bool = False  # marketing to marketplace relay addresses (e.g. …@marketplace.amazon.de)


@dataclass(frozen=True)
class Schedule:
    """How often the daemon fires each job, in real time."""

    sync_orders: timedelta = timedelta(minutes=5)
    poll_shipments: timedelta = timedelta(minutes=1)
    plan_followups: timedelta = timedelta(minutes=10)
    send_emails: timedelta = timedelta(seconds=30)
    watch_shipments: timedelta = timedelta(minutes=15)
    # How long claimed work (a feed, a batch of polls or emails) stays one daemon's before another may take
    # it over; None: each job's own default. Real time, like the intervals.
    lease: timedelta | None = None


@dataclass(frozen=True)
class EmailSettings:
    transport: str = "outbox"
    outbox_dir: Path = Path("outbox")
    enabled: frozenset[str] = frozenset(EMAIL_KINDS)
    feedback_after: timedelta = timedelta(days=7)
    coupon_after: timedelta = timedelta(days=14)
    coupon_discount: str = "10%"
    coupon_valid_for: timedelta = timedelta(days=30)
    retry_for: timedelta = timedelta(days=2)
    transport_tables: dict[str, Section] = field(default_factory=dict)  # [emails.smtp], [emails.postmark]
    coupons: Section | None = None  # [emails.coupons]: where codes come from (emails/coupons.py)
    consent_when_unknown: bool = False  # marketing to customers whose marketplace does not say
    marketing_cap: int = 2  # marketing emails per customer per window
    marketing_cap_window: timedelta = timedelta(days=7)
    marketing_hours: tuple[time, time] = (time(9), time(20))  # customer's local time


@dataclass(frozen=True)
class WebSettings:
    """`[web]`: the tracking pages, unsubscribe links, webhooks and the operator dashboard."""

    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = "http://127.0.0.1:8080"  # how customers reach it: links in emails start with this
    admin_user: str = "admin"
    admin_password: str = ""  # empty: a one-time password is made at start and written to the log
    shopify_secret: str = ""  # the app's client secret: verifies X-Shopify-Hmac-Sha256
    aftership_secret: str = ""  # the webhook secret: verifies aftership-hmac-sha256
    postmark_user: str = ""  # Postmark webhooks are unsigned: HTTP Basic credentials in the webhook URL
    postmark_password: str = ""
    # Opens and clicks: "marketing" (default: those emails already need consent), "all", or "off".
    track_engagement: str = "marketing"


@dataclass(frozen=True)
class Config:
    path: Path
    database_url: str
    notification_horizon: timedelta
    expire_after: timedelta
    clock_speed: float
    lookback: timedelta
    schedule: Schedule
    emails: EmailSettings
    shops: dict[str, ShopSettings]
    marketplaces: dict[str, AccountSettings] = field(default_factory=dict)
    couriers: dict[str, AccountSettings] = field(default_factory=dict)
    flows: tuple[Flow, ...] = ()
    web: WebSettings | None = None

    @property
    def is_sandbox(self) -> bool:
        accounts = [*self.marketplaces.values(), *self.couriers.values()]
        return all(a.type == "sandbox" for a in accounts)


def _relative(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _database_url(section: Section, base: Path) -> str:
    if "database_url" in section.data:
        url = section.str("database_url")
        if "://" not in url:
            raise section.error("database_url", "must be a URL like sqlite:///path.db or postgresql://...")
        return url
    return "sqlite:///" + str(_relative(base, section.str("database", "trackmail.db")))


def _shop(key: str, section: Section, base: Path) -> ShopSettings:
    section.check_keys(set(ShopSettings.__dataclass_fields__) - {"key", "calendar"} | {"business_days", "holidays"})
    sender = section.str("sender")
    if "@" not in sender:
        raise section.error("sender", "must be an email address, like 'My Shop <hello@myshop.com>'")
    values: dict[str, Any] = {"key": key, "name": section.str("name"), "sender": sender}
    social = section.table("social")
    values["social"] = tuple((network, social.str(network)) for network in social.data)
    values["calendar"] = _calendar(section)
    values["related_products"] = _products(section)
    for name in ShopSettings.__dataclass_fields__:
        if name in section.data and name not in values:
            values[name] = section.str(name)
    if "timezone" in values:
        try:
            ZoneInfo(values["timezone"])
        except (ZoneInfoNotFoundError, ValueError):
            raise section.error("timezone", f"{values['timezone']!r} is not a time zone like 'Europe/Berlin'") from None
    if "templates_dir" in values:
        folder = _relative(base, values["templates_dir"])
        if not folder.is_dir():
            raise section.error("templates_dir", f"folder {folder} does not exist")
        values["templates_dir"] = folder
    return ShopSettings(**values)


def _products(section: Section) -> tuple[dict, ...]:
    entries = section.data.get("related_products", [])
    if not isinstance(entries, list):
        raise section.error("related_products", "must be written as [[shops.<name>.related_products]] tables")
    products = []
    for index, entry in enumerate(entries):
        item = Section(section.file, f"{section.path}.related_products[{index}]", entry)
        item.check_keys({"title", "url", "image_url", "price"})
        try:
            price = Decimal(item.str("price"))
        except InvalidOperation:
            raise item.error("price", "must be an amount written as a string, like '19.90'") from None
        products.append({"title": item.str("title"), "url": item.str("url"), "image_url": item.str("image_url", ""),
                         "price": price})
    return tuple(products)


def _calendar(section: Section) -> ShopCalendar:
    days = section.strings("business_days", ["mon", "tue", "wed", "thu", "fri"])
    unknown = [d for d in days if d.lower()[:3] not in DAY_NAMES]
    if unknown or not days:
        raise section.error("business_days", f"must list days like 'mon', 'tue' (got {unknown or days})")
    holidays = set()
    for text in section.strings("holidays", []):
        try:
            holidays.add(date.fromisoformat(text))
        except ValueError:
            raise section.error("holidays", f"{text!r} is not a date like 2026-12-25") from None
    return ShopCalendar(frozenset(DAY_NAMES.index(d.lower()[:3]) for d in days), frozenset(holidays))


def _accounts(root: Section, key: str, shops: dict[str, ShopSettings]) -> dict[str, AccountSettings]:
    result = {}
    for name, section in root.tables(key).items():
        kind = section.str("type")
        shop = section.str("shop", next(iter(shops)) if len(shops) == 1 else "")
        if shop not in shops:
            known = ", ".join(sorted(shops)) or "none"
            raise section.error("shop", f"names no shop in [shops] (known: {known})")
        result[name] = AccountSettings(name, kind, shop, section, section.bool("marketing_to_proxy", False))
    return result


def _schedule(section: Section) -> Schedule:
    section.check_keys(set(Schedule.__dataclass_fields__))
    defaults = Schedule()
    values = {}
    for name in Schedule.__dataclass_fields__:
        if name == "lease" and name not in section.data:
            continue
        values[name] = section.duration(name, getattr(defaults, name))
        if values[name] <= timedelta(0):
            raise section.error(name, "must be longer than zero")
    return Schedule(**values)


def _emails(section: Section, base: Path) -> EmailSettings:
    section.check_keys(
        {"transport", "outbox_dir", "kinds", "feedback_after", "coupon_after", "coupon_discount",
         "coupon_valid_for", "retry_for", "marketing_when_consent_unknown", "marketing_cap", "marketing_cap_window",
         "marketing_hours", "coupons", *TRANSPORTS}
    )
    defaults = EmailSettings()
    transport = section.str("transport", defaults.transport)
    if transport not in TRANSPORTS:
        raise section.error("transport", f"unknown transport {transport!r}; known: {', '.join(TRANSPORTS)}")
    tables = {name: section.table(name) for name in TRANSPORTS if name in section.data}
    if transport != "outbox" and transport not in tables:
        section.table(transport, required=True)
    kinds = section.table("kinds")
    kinds.check_keys(set(EMAIL_KINDS))
    enabled = frozenset(k for k in EMAIL_KINDS if kinds.bool(k, True))
    return EmailSettings(
        transport=transport,
        outbox_dir=_relative(base, section.str("outbox_dir", "outbox")),
        enabled=enabled,
        feedback_after=section.duration("feedback_after", defaults.feedback_after),
        coupon_after=section.duration("coupon_after", defaults.coupon_after),
        coupon_discount=_discount(section, defaults.coupon_discount),
        coupon_valid_for=section.duration("coupon_valid_for", defaults.coupon_valid_for),
        retry_for=section.duration("retry_for", defaults.retry_for),
        transport_tables=tables,
        coupons=section.table("coupons") if "coupons" in section.data else None,
        consent_when_unknown=_consent_policy(section),
        marketing_cap=section.int("marketing_cap", defaults.marketing_cap, minimum=1),
        marketing_cap_window=section.duration("marketing_cap_window", defaults.marketing_cap_window),
        marketing_hours=_hours(section, "marketing_hours", defaults.marketing_hours),
    )


def _discount(section: Section, default: str) -> str:
    text = section.str("coupon_discount", default)
    try:
        parse_discount(text)
    except ValueError as exc:
        raise section.error("coupon_discount", str(exc)) from None
    return text


def _consent_policy(section: Section) -> bool:
    value = section.str("marketing_when_consent_unknown", "skip")
    if value not in ("skip", "send"):
        raise section.error("marketing_when_consent_unknown", "must be 'skip' or 'send'")
    return value == "send"


def _hours(section: Section, key: str, default: tuple[time, time]) -> tuple[time, time]:
    if key not in section.data:
        return default
    text = section.str(key)
    try:
        start, end = (time.fromisoformat(part.strip()) for part in text.split("-"))
    except ValueError:
        raise section.error(key, f"{text!r} is not a range like '09:00-20:00'") from None
    if not start < end:
        raise section.error(key, "the range must start before it ends, within one day")
    return start, end


def _web(root: Section) -> WebSettings | None:
    if "web" not in root.data:
        return None
    section = root.table("web")
    section.check_keys(set(WebSettings.__dataclass_fields__) | {"listen"})
    host, port = WebSettings.host, WebSettings.port
    if "listen" in section.data:
        text = section.str("listen")
        host, _, port_text = text.rpartition(":")
        if not host or not port_text.isdigit() or not 0 <= int(port_text) < 65536:  # 0: any free port
            raise section.error("listen", f"{text!r} is not an address like '127.0.0.1:8080'")
        port = int(port_text)
    values = {name: section.str(name) for name in WebSettings.__dataclass_fields__
              if name in section.data and name not in ("host", "port")}
    if values.get("track_engagement", "marketing") not in ("marketing", "all", "off"):
        raise section.error("track_engagement", "must be 'marketing', 'all' or 'off'")
    if not values.get("public_url", "x").startswith(("http://", "https://", "x")):
        raise section.error("public_url", "must start with https:// (or http:// on your own machine)")
    return WebSettings(host=host, port=port, **values)


def custom_kinds(shops: dict[str, ShopSettings]) -> set[str]:
    """Template names every shop can render beyond the built-ins: a flow may send them."""
    per_shop = []
    for shop in shops.values():
        folder = shop.templates_dir
        names = {p.stem for p in folder.glob("*.mjml") if "." not in p.stem} if folder else set()
        per_shop.append({n for n in names if (folder / f"{n}.txt").is_file()} - {"base"})
    return set.intersection(*per_shop) if per_shop else set()


def _flows(root: Section, config: Config) -> tuple[Flow, ...]:
    entries = root.data.get("flows")
    if entries is None:
        return builtin_flows(config.emails.feedback_after, config.emails.coupon_after)
    if not isinstance(entries, list):
        raise root.error("flows", "must be written as [[flows]] tables")
    return parse_flows(root.file, entries, set(EMAIL_KINDS) | custom_kinds(config.shops))


def parse(data: dict[str, Any], path: Path) -> Config:
    root = Section(path, "", data)
    root.check_keys({"trackmail", "schedule", "emails", "shops", "marketplaces", "couriers", "flows", "web"})
    base = path.parent
    main = root.table("trackmail")
    main.check_keys({"database", "database_url", "notification_horizon", "expire_after", "clock_speed",
                     "lookback"})
    shops = {key: _shop(key, section, base) for key, section in root.tables("shops").items()}
    if not shops:
        raise ConfigError(path, "shops", "at least one [shops.<name>] table is required")
    config = Config(
        path=path,
        database_url=_database_url(main, base),
        notification_horizon=main.duration("notification_horizon", "48h"),
        expire_after=main.duration("expire_after", "30d"),
        clock_speed=main.number("clock_speed", 1, minimum=1),
        lookback=main.duration("lookback", "60d"),
        schedule=_schedule(root.table("schedule")),
        emails=_emails(root.table("emails"), base),
        shops=shops,
        marketplaces=_accounts(root, "marketplaces", shops),
        couriers=_accounts(root, "couriers", shops),
    )
    config = replace(config, flows=_flows(root, config), web=_web(root))
    for key, shop in shops.items():
        chosen = shop.transport or config.emails.transport
        if chosen not in TRANSPORTS:
            known = ", ".join(TRANSPORTS)
            raise ConfigError(path, f"shops.{key}.transport", f"unknown transport {chosen!r}; known: {known}")
        if chosen != "outbox" and chosen not in config.emails.transport_tables:
            raise ConfigError(path, f"shops.{key}.transport", f"needs an [emails.{chosen}] table with its settings")
    if config.clock_speed != 1 and not config.is_sandbox:
        raise main.error("clock_speed", "speeds up time for the sandbox only; remove it when real accounts "
                                        "are connected")
    return config


def load(path: Path | str) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, "", "file not found (pass --config PATH or run from the folder that holds "
                                    "config.toml)") from None
    except OSError as exc:
        raise ConfigError(path, "", f"cannot be read: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "", f"is not valid TOML: {exc}") from None
    return parse(data, path.resolve())
