"""Request rates at the poller's concurrency against the local courier server, beside their ceilings.

    python -m bench.http [--seconds 3] [--concurrency 64] [--latency-ms 0,50] [--transports aiohttp,httpx,httpx-pool]

Not a test: it prints figures. For each latency it measures, one after the other in this process, against
one courier server in its own process (bench/courier_server.py):

- raw aiohttp (`ClientSession`): the fastest raw client, the ceiling at 0 ms;
- plain httpx (`AsyncClient()` as installed, its own httpcore pool);
- trackmail's `Http` (carriers/http.py: limits, rate limiter, retries) over each transport option, with its
  limits raised to the concurrency and an unreachable per-second rate.

With latency L the ideal rate is concurrency / L: every worker always waiting on the server. The CPU each
client burns per request is shown beside raw aiohttp's, and the server's CPU share shows it was not the
bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import httpx

from bench.courier_server import running, server_stats
from bench.report import Figure, table
from carriers.http import Http, Limits, RetryPolicy, fast_transport, make_client

PATH = "/track/shipments"


def transports(concurrency: int) -> dict[str, Callable[[], httpx.AsyncBaseTransport]]:
    """The transport options for trackmail's client, by the name the table shows."""
    pool = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return {
        "aiohttp": lambda: fast_transport(concurrency),  # httpx-aiohttp: what make_client uses
        "httpx": lambda: httpx.AsyncHTTPTransport(),  # httpx's default pool (100 connections, 20 kept alive)
        "httpx-pool": lambda: httpx.AsyncHTTPTransport(limits=pool),  # a fixed pool: every connection kept
    }


@dataclass
class Run:
    rate: float  # requests per second
    cpu_ms: float  # this process's CPU per request
    server_share: float  # the server's CPU seconds per second (1.0 = one core busy)


async def drive(call: Callable[[str], Awaitable[None]], concurrency: int, seconds: float, url: str) -> Run:
    """`concurrency` workers calling back to back for `seconds`, after one warm-up call each."""
    await asyncio.gather(*(call(f"WARM{w}") for w in range(concurrency)))
    done = 0
    before = server_stats(url)
    start, cpu = time.perf_counter(), time.process_time()
    deadline = start + seconds

    async def worker(w: int) -> None:
        nonlocal done
        i = 0
        while time.perf_counter() < deadline:
            await call(f"JJD{w:03d}{i:07d}")
            i += 1
            done += 1

    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    after = server_stats(url)
    return Run(done / elapsed, cpu / done * 1000, (after["cpu_seconds"] - before["cpu_seconds"]) / elapsed)


async def raw_aiohttp(base: str, concurrency: int, seconds: float, url: str) -> Run:
    async with aiohttp.ClientSession() as session:
        async def call(number: str) -> None:
            async with session.get(base + PATH, params={"trackingNumber": number}) as answer:
                await answer.read()
                if answer.status != 200:
                    raise RuntimeError(f"HTTP {answer.status}")

        return await drive(call, concurrency, seconds, url)


async def plain_httpx(base: str, concurrency: int, seconds: float, url: str) -> Run:
    async with httpx.AsyncClient(base_url=base) as client:
        async def call(number: str) -> None:
            (await client.get(PATH, params={"trackingNumber": number})).raise_for_status()

        return await drive(call, concurrency, seconds, url)


async def trackmail_http(base: str, concurrency: int, seconds: float, url: str,
                         transport: Callable[[], httpx.AsyncBaseTransport]) -> Run:
    http = Http("bench", make_client(base, transport=transport()), Limits(concurrency=concurrency, per_second=1e9),
                RetryPolicy(attempts=1))
    try:
        async def call(number: str) -> None:
            await http.request("GET", PATH, tracking_number=number, params={"trackingNumber": number})

        return await drive(call, concurrency, seconds, url)
    finally:
        await http.aclose()


def _figures(latency: float, concurrency: int, runs: dict[str, Run]) -> list[Figure]:
    at = f"{concurrency} in flight, {latency:g} ms latency"
    raw = runs["raw aiohttp"]
    if latency > 0:
        reference, reference_name = concurrency / (latency / 1000), f"ideal ({concurrency} / {latency:g} ms)"
    else:
        reference, reference_name = raw.rate, "raw aiohttp"
    figures = []
    for name, run in runs.items():
        ours = name.startswith("trackmail")
        target, met = "", None
        if ours and latency > 0 and name.endswith("(aiohttp)"):
            target, met = "≥ 90% of ideal", run.rate / reference >= 0.9
        figures.append(Figure("http", f"{name}, {at}", run.rate, "req/s", reference_name, reference, target, met))
    if latency > 0:  # the same runs against the measured ceiling: what a loaded machine leaves of the ideal
        figures += [Figure("http", f"{name} against raw aiohttp, {latency:g} ms", run.rate, "req/s", "raw aiohttp",
                           raw.rate) for name, run in runs.items() if name.startswith("trackmail")]
    for name, run in runs.items():
        figures.append(Figure("http", f"{name} CPU per request, {latency:g} ms", run.cpu_ms, "ms", "raw aiohttp",
                              raw.cpu_ms))
    busiest = max(run.server_share for run in runs.values())
    figures.append(Figure("http", f"courier server CPU at its busiest, {latency:g} ms", busiest * 100, "% of a core",
                          target="< 100% (not the bottleneck)", met=busiest < 0.9))
    return figures


def measure(args: argparse.Namespace) -> list[Figure]:
    concurrency = getattr(args, "concurrency", 64)
    seconds = getattr(args, "seconds", 3.0)
    latencies = [float(x) for x in str(getattr(args, "latency_ms", "0,50")).split(",")]
    options = transports(concurrency)
    chosen = [name.strip() for name in str(getattr(args, "transports", ",".join(options))).split(",")]
    figures = []
    with running() as url:
        for latency in latencies:
            base = f"{url}/delay/{latency:g}" if latency > 0 else url
            runs = {"raw aiohttp": asyncio.run(raw_aiohttp(base, concurrency, seconds, url)),
                    "plain httpx": asyncio.run(plain_httpx(base, concurrency, seconds, url))}
            for name in chosen:
                runs[f"trackmail Http ({name})"] = asyncio.run(
                    trackmail_http(base, concurrency, seconds, url, options[name]))
            figures += _figures(latency, concurrency, runs)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency-ms", default="0,50", help="comma-separated")
    parser.add_argument("--transports", default="aiohttp,httpx,httpx-pool",
                        help="trackmail Http transport options to compare, comma-separated")
    print(table(measure(parser.parse_args())))


if __name__ == "__main__":
    main()
