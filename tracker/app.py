"""Everything a job needs, built once from the config: database, clock, adapters and the outbox."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session

from carriers import build_courier, build_marketplace
from carriers.base import Courier, Marketplace
from emails.outbox import Outbox
from emails.send import OutboxFolderSender, Sender
from tracker.clock import Clock
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


def build_sender(config: Config, outbox_dir: Path | None = None) -> Sender:
    """The configured transport; `outbox_dir` (simulate) forces the outbox folder whatever the config says."""
    if outbox_dir is not None or config.emails.transport == "outbox":
        return OutboxFolderSender(outbox_dir or config.emails.outbox_dir)
    if config.emails.transport == "postmark":
        from emails.postmark import PostmarkSender, PostmarkSettings

        return PostmarkSender(PostmarkSettings.from_section(config.emails.transport_settings))
    from emails.smtp import SmtpSender, SmtpSettings

    return SmtpSender(SmtpSettings.from_section(config.emails.transport_settings))


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
        sender = build_sender(config, outbox_dir)
        return cls(
            config=config,
            engine=engine,
            clock=clock,
            couriers={n: build_courier(_seeded(a, seed), clock) for n, a in config.couriers.items()},
            marketplaces={n: build_marketplace(_seeded(a, seed), clock) for n, a in config.marketplaces.items()},
            outbox=Outbox(config, sender, secret),
        )

    def lookback(self, account: str) -> timedelta:
        section = self.config.marketplaces[account].section
        return section.duration("lookback", self.config.lookback)

    def now(self) -> datetime:
        return self.clock()

    async def aclose(self) -> None:
        for adapter in [*self.couriers.values(), *self.marketplaces.values(), self.outbox.sender]:
            close = getattr(adapter, "aclose", None)
            if close is not None:
                await close()
