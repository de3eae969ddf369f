"""Everything a job needs, built once from the config: database, clock, adapters and the outbox."""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from carriers import build_courier, build_marketplace
from carriers.base import Courier, Marketplace
from emails.outbox import Outbox
from emails.send import OutboxFolderSender, Sender
from tracker.clock import Clock, as_measured_by
from tracker.config import AccountSettings, Config
from tracker.db import insert_ignore, open_db
from tracker.models import Setting
from tracker.settings import Section


def stored_setting(engine: Engine, key: str, make: str) -> str:
    """A value remembered in the database; the first caller's `make` wins, also across daemons."""
    with Session(engine) as session:
        insert_ignore(session, Setting, key=key, value=make)
        session.commit()
        return session.get_one(Setting, key).value


def swap_setting(engine: Engine, key: str, old: str, new: str) -> bool:
    """Replace a remembered value only if it is still `old`: of several daemons doing a once-only step (the
    day's digest), the one whose swap succeeds does it."""
    with Session(engine) as session:
        result = session.execute(update(Setting).where(Setting.key == key, Setting.value == old).values(value=new))
        session.commit()
        return result.rowcount == 1


def _make_sender(config: Config, transport: str, outbox_dir: Path | None) -> Sender:
    if outbox_dir is not None or transport == "outbox":
        return OutboxFolderSender(outbox_dir or config.emails.outbox_dir)
    table = config.emails.transport_tables[transport]
    if transport == "postmark":
        from emails.postmark import PostmarkSender, PostmarkSettings

        return PostmarkSender(PostmarkSettings.from_section(table))
    from emails.smtp import SmtpSender, SmtpSettings

    return SmtpSender(SmtpSettings.from_section(table))


def build_senders(config: Config, outbox_dir: Path | None = None) -> tuple[Sender, dict[str, Sender]]:
    """The default sender and the shops' own, one instance per transport. `outbox_dir` (simulate) forces
    the outbox folder whatever the config says."""
    made: dict[str, Sender] = {}

    def sender(transport: str) -> Sender:
        if transport not in made:
            made[transport] = _make_sender(config, transport, outbox_dir)
        return made[transport]

    default = sender(config.emails.transport)
    per_shop = {key: sender(shop.transport) for key, shop in config.shops.items() if shop.transport}
    return default, per_shop


def build_coupon_source(config: Config, secret: bytes, engine: Engine, clock: Clock):
    """Where resell coupon codes come from: `[emails.coupons]`, else codes derived locally."""
    from emails.coupons import LocalCoupons
    from tracker.shop_coupons import coupon_source_from_settings

    if config.emails.coupons is None:
        return LocalCoupons(secret)
    return coupon_source_from_settings(config.emails.coupons, secret, engine, config.marketplaces, clock)


def _seeded(account: AccountSettings, seed: int | None) -> AccountSettings:
    """The account with its sandbox seed replaced (`simulate --seed`); real accounts are left alone."""
    if seed is None or account.type != "sandbox":
        return account
    section = Section(account.section.file, account.section.path, {**account.section.data, "seed": seed})
    return replace(account, section=section)


@dataclass
class App:
    config: Config
    engine: Engine
    clock: Clock
    couriers: dict[str, Courier]
    marketplaces: dict[str, Marketplace]
    outbox: Outbox
    cache: dict = field(default_factory=dict)  # derived data worth keeping between job runs (not durable)

    @classmethod
    def create(
        cls,
        config: Config,
        clock: Clock,
        *,
        database_url: str | None = None,
        outbox_dir: Path | None = None,
        seed: int | None = None,
        engine: Engine | None = None,
    ) -> App:
        engine = engine or open_db(database_url or config.database_url)
        secret = bytes.fromhex(stored_setting(engine, "secret", secrets.token_hex(32)))
        sender, shop_senders = build_senders(config, outbox_dir)
        coupons = build_coupon_source(config, secret, engine, clock)
        app = cls(
            config=config,
            engine=engine,
            clock=clock,
            couriers={n: build_courier(_seeded(a, seed), clock) for n, a in config.couriers.items()},
            marketplaces={n: build_marketplace(_seeded(a, seed), clock) for n, a in config.marketplaces.items()},
            outbox=Outbox(config, sender, secret, shop_senders, coupons),
        )
        app.outbox.clock = clock
        return app

    def lookback(self, account: str) -> timedelta:
        section = self.config.marketplaces[account].section
        return section.duration("lookback", self.config.lookback)

    def now(self) -> datetime:
        return self.clock()

    def lease(self, default: timedelta) -> timedelta:
        """How long claimed work stays this daemon's, in the jobs' clock: `[schedule] lease` or `default`."""
        return as_measured_by(self.clock, self.config.schedule.lease or default)

    @property
    def worker(self) -> str:
        """This process's name on the leases it holds (host, pid and a random part: two apps in one test
        process are two workers)."""
        if "worker" not in self.cache:  # made once: it is read on every claim, renewal and release
            self.cache["worker"] = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        return self.cache["worker"]

    async def aclose(self) -> None:
        senders = {id(s): s for s in [self.outbox.sender, *self.outbox.shop_senders.values(),
                                      self.outbox.coupons]}.values()
        for adapter in [*self.couriers.values(), *self.marketplaces.values(), *senders]:
            close = getattr(adapter, "aclose", None)
            if close is not None:
                await close()
