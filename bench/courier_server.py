"""A local DHL-like courier API for the benchmarks: published payloads per tracking number, optional latency.

    python -m bench.courier_server [--port 0] [--latency-ms 0]

Runs in its own process so its CPU never competes with the client's event loop. It prints one line,
`listening on http://127.0.0.1:<port>`, then serves until stopped:

- ``GET /track/shipments?trackingNumber=<n>`` answers like DHL's Unified Tracking API. The body is the
  published DHL Paket sample (shared/carrier-samples) cut to the first k of its events, k chosen from the
  number (so different parcels are at different stages), with the shipment id set to the number and the
  times moved so the latest event is three hours old (recent news: the poller emails about it).
- ``GET /delay/<ms>/track/shipments`` (or ``?latency=<ms>``) answers after <ms> milliseconds, slept without
  blocking, so one server serves every latency; a client puts the prefix in its base URL.
- ``GET /stats`` returns ``{"requests": n, "cpu_seconds": s}``: the benchmark checks the server was not the
  bottleneck.

Bodies are built once at start; a request only splices the JSON-encoded number into precomputed bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import subprocess
import sys
import time
import urllib.request
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import web

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "carrier-samples"
SAMPLE_NAME = "dhl-unified-parcel-de-delivered.json"
PLACEHOLDER = "@@tracking-number@@"


def find_sample(name: str = SAMPLE_NAME) -> Path:
    """The published sample: shared/ beside the repository (worktrees sit elsewhere, so /work/shared too)."""
    for folder in (SAMPLES, Path("/work/shared/carrier-samples")):
        if (folder / name).exists():
            return folder / name
    raise SystemExit(f"cannot find {name} in {SAMPLES}")


def _rebased(events: list[dict], newest: datetime) -> list[dict]:
    """The events moved in time so the newest is at `newest` (same offset-less local format as DHL's)."""
    shift = newest - datetime.fromisoformat(events[0]["timestamp"])
    moved = copy.deepcopy(events)
    for event in moved:
        event["timestamp"] = (datetime.fromisoformat(event["timestamp"]) + shift).isoformat(timespec="seconds")
    return moved


def stage_bodies(sample: dict, newest: datetime) -> list[tuple[bytes, bytes]]:
    """One body per stage of the sample parcel's life (events are newest first), split around the id. Each
    stage's latest event happens at `newest`, so the poller treats it as news worth an email."""
    events = sample["shipments"][0]["events"]
    stages = []
    for k in range(1, len(events) + 1):
        staged = copy.deepcopy(sample)
        one = staged["shipments"][0]
        one["id"] = PLACEHOLDER
        one["events"] = _rebased(events[-k:], newest)
        one["status"] = copy.deepcopy(one["events"][0])
        if k < len(events):
            one.pop("details", None)  # no proof of delivery before delivery
        head, tail = json.dumps(staged, ensure_ascii=False).encode().split(json.dumps(PLACEHOLDER).encode())
        stages.append((head, tail))
    return stages


def stage_of(number: str, stages: int) -> int:
    """A stable stage per number: the same parcel always gets the same answer."""
    return zlib.crc32(number.encode()) % stages


class CourierServer:
    def __init__(self, stages: list[tuple[bytes, bytes]], latency_ms: float = 0.0) -> None:
        self.stages = stages
        self.latency_ms = latency_ms
        self.requests = 0

    async def track(self, request: web.Request) -> web.Response:
        self.requests += 1
        delay = float(request.match_info.get("ms") or request.query.get("latency") or self.latency_ms)
        if delay > 0:
            await asyncio.sleep(delay / 1000)
        number = request.query.get("trackingNumber", "")
        if not number:
            return web.json_response({"title": "Bad request", "status": 400,
                                      "detail": "trackingNumber is required"}, status=400)
        head, tail = self.stages[stage_of(number, len(self.stages))]
        return web.Response(body=head + json.dumps(number).encode() + tail, content_type="application/json")

    async def stats(self, _request: web.Request) -> web.Response:
        return web.json_response({"requests": self.requests, "cpu_seconds": time.process_time()})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/track/shipments", self.track)
        app.router.add_get("/delay/{ms}/track/shipments", self.track)
        app.router.add_get("/stats", self.stats)
        return app


async def serve(port: int, latency_ms: float) -> None:
    newest = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=3)  # read as local time: still the past
    server = CourierServer(stage_bodies(json.loads(find_sample().read_text()), newest), latency_ms)
    runner = web.AppRunner(server.app(), access_log=None, handle_signals=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=1024)
    await site.start()
    bound = runner.addresses[0][1]
    print(f"listening on http://127.0.0.1:{bound}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


@contextlib.contextmanager
def running(latency_ms: float = 0.0) -> Iterator[str]:
    """Start the server in a child process; yields its base URL and stops it afterwards."""
    child = subprocess.Popen([sys.executable, "-m", "bench.courier_server", "--latency-ms", str(latency_ms)],
                             stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
    try:
        line = child.stdout.readline() if child.stdout else ""
        if not line.startswith("listening on "):
            raise RuntimeError(f"the courier server did not start: {line!r}")
        yield line.split()[-1]
    finally:
        child.terminate()
        child.wait(timeout=10)
        if child.stdout:
            child.stdout.close()


def server_stats(url: str) -> dict:
    """Requests served and CPU seconds used by the server so far."""
    with urllib.request.urlopen(f"{url}/stats", timeout=10) as answer:
        return json.load(answer)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="default delay of every answer")
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args.port, args.latency_ms))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
