"""Commands that change things by hand: run the order sync once, re-queue a failed email, manage the
suppression list."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
from datetime import UTC, datetime

from sqlalchemy import select
from sqlmodel import Session

from tracker.cli_output import EXIT_PROBLEM, print_rows
from tracker.config import Config
from tracker.db import open_db
from tracker.models import Suppression, SuppressionScope


def sync(config: Config, as_json: bool) -> int:
    """Every feed once, in real time, and what changed."""
    from tracker.app import App
    from tracker.clock import system_clock
    from tracker.sync import sync_orders

    async def once():
        app = App.create(config, system_clock)
        try:
            return await sync_orders(app, system_clock())
        finally:
            await app.aclose()
            app.engine.dispose()

    report = asyncio.run(once())
    if as_json:
        print(json.dumps(dataclasses.asdict(report), indent=2))
    else:
        print(f"orders: {report.orders_new} new, {report.orders_updated} updated, {report.cancelled} cancelled; "
              f"shipments: {report.shipments_new} new; emails planned: {report.emails_planned}")
        for problem in report.problems:
            print(f"kept aside: {problem}")
        for error in report.errors:
            print(f"error: {error}")
    return EXIT_PROBLEM if report.errors else 0


def retry_email(config: Config, email_id: int) -> int:
    """Put one failed, held or skipped email back in the queue, due now."""
    from emails.outbox import requeue_email

    engine = open_db(config.database_url)
    try:
        done = requeue_email(engine, email_id, datetime.now(UTC))
    except (LookupError, ValueError) as exc:
        print(f"trackmail: {exc}")
        return EXIT_PROBLEM
    finally:
        engine.dispose()
    print(f"email {email_id} ({done.kind} to {done.to_address}) re-queued; it goes on the next send run")
    return 0


def suppress_command(config: Config, args: argparse.Namespace) -> int:
    from emails.outbox import suppress

    engine = open_db(config.database_url)
    try:
        if args.action == "add":
            scope = SuppressionScope.ALL if args.all else SuppressionScope.MARKETING
            changed = suppress(engine, args.address, scope, args.reason or "added by hand", "manual",
                               datetime.now(UTC))
            print(f"{args.address}: {'suppressed' if changed else 'already suppressed'} ({scope})")
            return 0
        if args.action == "remove":
            with Session(engine) as session:
                row = session.execute(
                    select(Suppression).where(Suppression.email == args.address.lower())).scalar_one_or_none()
                if row is None:
                    print(f"{args.address} is not on the suppression list")
                    return EXIT_PROBLEM
                session.delete(row)
                session.commit()
            print(f"{args.address} removed from the suppression list")
            return 0
        with Session(engine) as session:
            rows = [{"email": r.email, "scope": str(r.scope), "reason": r.reason, "source": r.source,
                     "since": r.created_at.isoformat()}
                    for r in session.execute(select(Suppression).order_by(Suppression.email)).scalars()]
        print_rows(rows, ["email", "scope", "reason", "source", "since"], args.json)
        return 0
    finally:
        engine.dispose()
