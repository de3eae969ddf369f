"""`trackmail run`: APScheduler fires the jobs; all durable state lives in the database, not the scheduler.

Jobs run one at a time (a lock), so a signal can wait for the step under way to finish and then exit. A
SIGKILL loses nothing either: every step commits its work and its email plans together, and leases let the
next start pick up whatever was claimed but not finished.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session

from emails.outbox import release_held
from tracker.app import App, stored_setting
from tracker.clock import Clock, ScaledClock, system_clock
from tracker.config import Config
from tracker.db import open_db
from tracker.jobs import JOBS, Job, run_cycle
from tracker.models import Setting

log = logging.getLogger("trackmail.daemon")
CLOCK_KEY = "scaled_clock"
MIN_TICK = 0.25  # seconds; a sped-up clock divides the schedule's intervals down to this at most


def make_clock(config: Config, engine: Any) -> Clock:
    """Real time, or for the sandbox demo a sped-up clock that resumes where the last run stopped."""
    if config.clock_speed == 1:
        return system_clock
    now = system_clock()
    resumed = datetime.fromisoformat(stored_setting(engine, CLOCK_KEY, now.isoformat()))
    return ScaledClock(max(now, resumed), config.clock_speed)


def _remember_clock(app: App, now: datetime) -> None:
    if app.config.clock_speed != 1:
        with Session(app.engine) as session:
            session.merge(Setting(key=CLOCK_KEY, value=now.isoformat()))
            session.commit()


def describe(name: str, report: Any) -> str | None:
    """One log line for a job that did something; None when there is nothing to say."""
    if isinstance(report, int):
        return f"{name}: {report} follow-up emails planned" if report else None
    values = {k: v for k, v in vars(report).items() if v and k != "errors"}
    if not values:
        return None
    return f"{name}: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in values.items())


async def _run_job(app: App, job: Job, lock: asyncio.Lock) -> None:
    async with lock:
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


async def serve(config: Config, *, once: bool = False) -> None:
    engine = open_db(config.database_url)
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


async def _serve_forever(app: App) -> None:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    lock = asyncio.Lock()
    scheduler = AsyncIOScheduler(timezone=UTC)
    speed = app.config.clock_speed
    for job in JOBS:
        every = getattr(app.config.schedule, job.name) / speed
        scheduler.add_job(_run_job, "interval", args=(app, job, lock), id=job.name,
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

