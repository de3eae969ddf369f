"""Tracking answers parsed per second by each adapter, beside karrio's parser on the same published payload.

    python -m bench.parse [--seconds 1]

Each courier gets two rows: both parsers on the decoded payload (the target: JSON decoding is not the
adapter's work; in trackmail the HTTP layer does it), then both starting from the raw text, each with its own
decoder. karrio's network layer is not involved: its `parse_tracking_response` gets the `Deserializable` its
proxy would have built. Each side must return events for the sample, so neither wins by skipping work. karrio
comes from the optional `bench` extra (`pip install -e '.[bench]'`); without it only our rates print.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.report import Figure, table

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent.parent / "shared" / "carrier-samples"
FIXTURES = REPO / "tests" / "fixtures"
TARGET = 10.0  # each adapter at least ten times karrio's rate


@dataclass(frozen=True)
class Case:
    courier: str
    sample: str  # file name in carrier-samples (or tests/fixtures/<courier>/)
    number: str
    karrio: str | None  # karrio provider package, None where karrio has no counterpart


CASES = [
    Case("dhl", "dhl-unified-parcel-de-delivered.json", "470800204932", "dhl_universal"),
    Case("ups", "ups-track-v1-delivered-12-events.json", "1ZR760R60332160282", "ups"),
    Case("fedex", "fedex-track-v1-delivered-ground-17-events.json", "738488882438", "fedex"),
    Case("usps", "usps-v3-tracking-detail-delivered.json", "9400109104250532908587", "usps"),
    Case("aftership", "aftership-v4-get-tracking-delivered.json", "111111111111", None),
]


def sample_text(case: Case) -> str:
    """The published payload; the copy under tests/fixtures when shared/ is not beside the checkout."""
    for path in (SAMPLES / case.sample, FIXTURES / case.courier / case.sample):
        if path.exists():
            return path.read_text(encoding="utf-8")
    raise FileNotFoundError(case.sample)


def ours(case: Case, text: str, decode: bool) -> Callable[[], int]:
    """trackmail's adapter on the payload (decoding the text first if `decode`); returns the event count."""
    import importlib

    parse = importlib.import_module(f"carriers.{case.courier}").parse_tracking
    if decode:
        return lambda: len(parse(json.loads(text), case.number, "bench").events)
    payload = json.loads(text)
    return lambda: len(parse(payload, case.number, "bench").events)


def karrio(case: Case, text: str, decode: bool) -> Callable[[], int] | None:
    """karrio's parser on the answer as its proxy hands it over (the same shapes as
    mappers/<carrier>/proxy.py get_tracking); None when karrio is not installed. Without `decode` the
    Deserializable holds what karrio's own decoder (lib.to_dict, which also drops empty values) made of
    the text beforehand, so only the parsing is timed."""
    try:
        import importlib

        import karrio.lib as lib
        from loguru import logger
    except ImportError:
        return None
    # Logging and network are not parsing: karrio's Deserializable logs every payload at debug level,
    # jstruct warns about every field its schema lacks, and the FedEx parser fetches a proof-of-delivery
    # image over HTTP for a delivered parcel (our adapter makes no such call).
    logger.disable("karrio")
    logging.getLogger("jstruct").setLevel(logging.ERROR)
    if case.karrio == "fedex":
        import karrio.providers.fedex.utils as fedex_utils

        fedex_utils.get_proof_of_delivery = lambda *_args, **_kwargs: None
    provider = importlib.import_module(f"karrio.providers.{case.karrio}.tracking")
    settings = _karrio_settings(case.karrio)
    to_dict = lib.to_dict if decode else (lambda value: value)
    answer = text if decode else lib.to_dict(text)
    shapes: dict[str, tuple[Any, Callable[[Any], Any]]] = {
        "ups": ([(case.number, answer)], lambda rs: [(n, to_dict(r)) for n, r in rs]),
        "usps": ([(case.number, answer)], lambda rs: [(n, to_dict(r)) for n, r in rs]),
        "fedex": (answer, to_dict),
        "dhl_universal": ([answer], lambda rs: [to_dict(r) for r in rs]),
    }
    value, deserializer = shapes[case.karrio]

    def run() -> int:
        details, _messages = provider.parse_tracking_response(lib.Deserializable(value, deserializer), settings)
        return sum(len(d.events or []) for d in details)

    return run


def _karrio_settings(provider: str) -> Any:
    import importlib

    settings = importlib.import_module(f"karrio.mappers.{provider}.settings").Settings
    credentials = {
        "ups": {"client_id": "bench", "client_secret": "bench"},
        "usps": {"client_id": "bench", "client_secret": "bench"},
        "fedex": {"api_key": "bench", "secret_key": "bench"},
        "dhl_universal": {"consumer_key": "bench", "consumer_secret": "bench"},
    }[provider]
    return settings(**credentials)


def rate(work: Callable[[], int], seconds: float) -> float:
    """Calls per second over at least `seconds`, timed in batches so the clock is read rarely."""
    batch, done, start = 1, 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(batch):
            work()
        done += batch
        batch = min(batch * 2, 256)
    return done / elapsed


def best_rates(a: Callable[[], int], b: Callable[[], int] | None, seconds: float, rounds: int = 5):
    """Alternate the two sides for a few rounds and keep each one's best, so a noisy neighbour on the
    shared cores hurts neither side more than the other."""
    best_a = best_b = 0.0
    for _ in range(rounds):
        best_a = max(best_a, rate(a, seconds / rounds))
        if b is not None:
            best_b = max(best_b, rate(b, seconds / rounds))
    return best_a, (best_b if b is not None else None)


def measure(args: argparse.Namespace) -> list[Figure]:
    """Per courier: the parse of a decoded payload against karrio's (the target), then the same with JSON
    decoding on both sides (for information: the decoder is the same json module on both sides)."""
    seconds = getattr(args, "seconds", 2.0)
    figures = []
    for case in CASES:
        text = sample_text(case)
        for decode in (False, True):
            figures.append(_compare(case, text, decode, seconds))
    return figures


def _compare(case: Case, text: str, decode: bool, seconds: float) -> Figure:
    mine = ours(case, text, decode)
    events = mine()
    assert events > 0, f"{case.courier}: our parser found no events in {case.sample}"
    theirs = karrio(case, text, decode) if case.karrio else None
    if theirs is not None:
        assert theirs() > 0, f"{case.courier}: karrio found no events in {case.sample}"
    name = f"{case.courier} {'json + parse' if decode else 'parse'}: {case.sample} ({events} events)"
    ours_rate, their_rate = best_rates(mine, theirs, seconds)
    if theirs is None:
        why = "karrio has no counterpart" if case.karrio is None else "karrio not installed (pip install -e '.[bench]')"
        return Figure("parse", name, ours_rate, "parses/s", reference_name=why)
    assert mine() == events and theirs() > 0, "a parser changed its answer on a second run"
    if decode:
        return Figure("parse", name, ours_rate, "parses/s", reference_name=f"karrio {case.karrio}",
                      reference=their_rate)
    return Figure("parse", name, ours_rate, "parses/s", reference_name=f"karrio {case.karrio}", reference=their_rate,
                  target=f"≥ {TARGET:g}× karrio", met=ours_rate >= TARGET * their_rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per courier, row and side")
    print(table(measure(parser.parse_args())))


if __name__ == "__main__":
    main()
