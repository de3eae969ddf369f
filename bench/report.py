"""One figure of the benchmark beside its reference, so every result reads as a ratio from the same run.

Each bench module offers `measure(args) -> list[Figure]`; bench/run.py runs them all in one process
tree and prints one table. A module can also run alone (`python -m bench.<name>`) and print its own part.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    section: str  # e.g. "http", "pipeline", "parse", "render", "memory", "cli", "polling"
    name: str  # what was measured, e.g. "poller at concurrency 64, 50 ms latency"
    value: float
    unit: str  # e.g. "req/s", "shipments/s", "MB", "ms"
    reference_name: str = ""  # what it is compared with, e.g. "ideal rate (64 / 50 ms)"
    reference: float | None = None
    target: str = ""  # the goal in words, e.g. "≥ 90% of ideal"
    met: bool | None = None  # None when there is no target

    @property
    def ratio(self) -> float | None:
        return None if not self.reference else self.value / self.reference


def table(figures: Iterable[Figure]) -> str:
    rows = []
    for f in figures:
        ratio = "" if f.ratio is None else f"{f.ratio:.2f}×"
        reference = "" if f.reference is None else f"{f.reference:,.1f} {f.unit} ({f.reference_name})"
        verdict = {True: "met", False: "MISSED", None: ""}[f.met]
        rows.append((f.section, f.name, f"{f.value:,.1f} {f.unit}", reference, ratio, f.target, verdict))
    header = ("section", "figure", "value", "reference", "ratio", "target", "")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)
