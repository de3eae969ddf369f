"""`trackmail run`: APScheduler fires the jobs; all durable state lives in the database, not the scheduler.

Jobs run one at a time (a lock), so a signal can wait for the step under way to finish and then exit. A
SIGKILL loses nothing either: every step commits its work and its email plans together, and leases let the
next start pick up whatever was claimed but not finished.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import IO, Any

from sqlalchemy import update
from sqlmodel import Session

from emails.outbox import release_held
from tracker.app import App, stored_setting
from tracker.cli_output import EXIT_PROBLEM
from tracker.clock import Clock, ScaledClock, system_clock
from tracker.config import Config
from tracker.db import open_db
from tracker.jobs import JOBS, Job, run_cycle
from tracker.models import Email, FeedCursor, Setting, Shipment
from tracker.sync import sync_orders

log = logging.getLogger("trackmail.daemon")
CLOCK_KEY = "scaled_clock"
ANCHOR_KEY = "scaled_clock_anchor"  # "<real time> <sandbox time>": where the shared sped-up clock started
ANCHOR_LIVE = timedelta(seconds=30)  # real time; a clock that moved this recently has a daemon running on it
MIN_TICK = 0.25  # seconds; a sped-up clock divides the schedule's intervals down to this at most


def _stamp(moment: datetime) -> str:
    """Fixed-width ISO time: stored stamps then compare as strings in the database as they do as times."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def make_clock(config: Config, engine: Any) -> Clock:
    """Real time, or for the sandbox demo a sped-up clock that resumes where the last run stopped.

    Daemons sharing a PostgreSQL database share one sped-up clock: each computes it from the same anchor (a
    real time and the sandbox time it stands for), so their `now`s agree and their leases mean the same. A
    daemon that finds no other running (the clock last moved more than ANCHOR_LIVE ago) sets a new anchor;
    on SQLite, one daemon per file, it always does (sandbox time stands still while the daemon is down)."""
    if config.clock_speed == 1:
        return system_clock
    alone = engine.url.get_backend_name() == "sqlite"
    while True:
        real = system_clock()
        remembered = datetime.fromisoformat(stored_setting(engine, CLOCK_KEY, _stamp(real)))
        anchor = stored_setting(engine, ANCHOR_KEY, "")
        if anchor and not alone:
            real_at, sandbox_at = (datetime.fromisoformat(part) for part in anchor.split())
            projected = sandbox_at + (real - real_at) * config.clock_speed
            if abs(projected - remembered) <= ANCHOR_LIVE * config.clock_speed:  # a daemon runs on it
                return ScaledClock(projected, config.clock_speed)
        start = max(real, remembered)
        with Session(engine) as session:  # compare-and-set: of two daemons starting at once, one anchors
            moved = session.execute(update(Setting).where(Setting.key == ANCHOR_KEY, Setting.value == anchor)
                                    .values(value=f"{_stamp(real)} {_stamp(start)}")).rowcount
            session.commit()
        if moved:
            return ScaledClock(start, config.clock_speed)


def _remember_clock(app: App, now: datetime) -> None:
    """How far the sped-up clock got; never moved back by a daemon whose job started a moment earlier."""
    if app.config.clock_speed != 1:
        with Session(app.engine) as session:
            session.execute(update(Setting).where(Setting.key == CLOCK_KEY, Setting.value < _stamp(now))
                            .values(value=_stamp(now)))
            session.commit()


def describe(name: str, report: Any) -> str | None:
    """One log line for a job that did something; None when there is nothing to say."""
    if isinstance(report, int):
        return f"{name}: {report} follow-up emails planned" if report else None
    values = {k: v for k, v in vars(report).items() if v and k != "errors"}
    if not values:
        return None
    return f"{name}: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in values.items())


async def _run_job(app: App, job: Job, lock: asyncio.Lock, stop: asyncio.Event) -> None:
    async with lock:
        if stop.is_set():  # fired before the signal and queued behind the running step: nothing more to start
            return
        now = app.clock()
        try:
            report = await job.run(app, now)
        except Exception:  # the daemon outlives any one failing step; the next tick tries again
            log.exception("%s failed; will run again on the next tick", job.name)
            return
        _remember_clock(app, now)
        line = describe(job.name, report)
        if line:
            log.info("%s  [%s]", line, now.strftime("%Y-%m-%d %H:%M"))


def _alone_on_sqlite(engine: Any) -> IO[str] | None:
    """SQLite takes one daemon per file (no SKIP LOCKED): hold a lock beside the file while we run (the kernel
    drops it however the process ends), and release the leases a killed predecessor left, since nobody else
    can hold them. None on PostgreSQL, where daemons share the work and a dead one's leases run out instead."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    import fcntl

    handle = open(f"{url.database}.daemon-lock", "a")  # noqa: SIM115 - held open for the daemon's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        log.error("another trackmail daemon is running on %s; SQLite takes one (use PostgreSQL for several)",
                  url.database)
        raise SystemExit(EXIT_PROBLEM) from None
    with Session(engine) as session:
        for model in (Shipment, Email, FeedCursor):
            session.execute(update(model).where(model.claimed_until.is_not(None)).values(claimed_until=None))
        session.commit()
    return handle


async def serve(config: Config, *, once: bool = False) -> None:
    engine = open_db(config.database_url)
    alone = _alone_on_sqlite(engine)
    app = App.create(config, make_clock(config, engine), engine=engine)
    released = release_held(engine)
    if released:
        log.info("released %d held emails for another try", released)
    try:
        if once:
            now = app.clock()
            for name, report in (await run_cycle(app, now)).items():
                log.info("%s", describe(name, report) or f"{name}: nothing to do")
            _remember_clock(app, now)
            return
        await _serve_forever(app)
    finally:
        await app.aclose()
        engine.dispose()
        if alone is not None:
            alone.close()


def scheduled_jobs(config: Config) -> list[Job]:
    """The jobs as the daemon runs them: a feed another daemon read within half an interval is left alone,
    so several daemons read each account about once per `[schedule] sync_orders`, not once each."""
    gap = config.schedule.sync_orders / 2
    return [Job(job.name, partial(sync_orders, min_gap=gap)) if job.run is sync_orders else job for job in JOBS]


async def _serve_forever(app: App) -> None:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    lock = asyncio.Lock()
    scheduler = AsyncIOScheduler(timezone=UTC)
    speed = app.config.clock_speed
    for job in scheduled_jobs(app.config):
        every = getattr(app.config.schedule, job.name) / speed
        scheduler.add_job(_run_job, "interval", args=(app, job, lock, stop), id=job.name,
                          seconds=max(every.total_seconds(), MIN_TICK), next_run_time=datetime.now(UTC),
                          max_instances=1, coalesce=True, misfire_grace_time=None)
    scheduler.start()
    web = None
    if app.config.web is not None:
        from tracker.web.serve import serve_web

        web = asyncio.create_task(serve_web(app, stop))
    log.info("trackmail running: %d marketplace and %d courier accounts, clock %s; Ctrl-C to stop",
             len(app.marketplaces), len(app.couriers), "real time" if speed == 1 else f"×{speed:g} (sandbox demo)")
    await stop.wait()
    log.info("stopping: finishing the current step")
    scheduler.pause()
    async with lock:
        scheduler.shutdown(wait=False)
    if web is not None:
        await web
    log.info("stopped cleanly")


def run(config: Config, *, once: bool = False) -> None:
    asyncio.run(serve(config, once=once))

