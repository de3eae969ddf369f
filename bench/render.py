"""Emails rendered per second against a plain Jinja2 render of the same compiled HTML, in one run.

    python bench/render.py [--seconds 2]     (bench/run.py calls measure())

Not a test: it prints figures. The reference is jinja2.Template(html).render(context) on the HTML the
renderer compiled, so the ratio shows what trackmail adds on top of Jinja (subject, preheader, text part,
sandbox, locale-aware filters).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jinja2

from emails.context import sample_context
from emails.kinds import EMAIL_KINDS
from emails.render import Renderer
from tracker.config import load

REPO = Path(__file__).resolve().parents[1]


def rate(work, seconds: float) -> float:
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        work()
        done += 1
    return done / (time.perf_counter() - start)


def compare(seconds: float):
    """Compile every kind once, then per kind (kind, trackmail renders/s, plain Jinja2 renders/s); the first
    value yielded is the one-off compile time in ms."""
    shop = load(REPO / "config.toml").shops["demo"]
    renderer = Renderer()
    start = time.perf_counter()
    for kind in EMAIL_KINDS:
        renderer.compile(kind)
    yield (time.perf_counter() - start) * 1000
    for kind in EMAIL_KINDS:
        context = sample_context(kind, shop)
        compiled = renderer.compile(kind)
        plain_env = jinja2.Environment(autoescape=True)
        plain_env.filters.update(compiled.html.environment.filters)
        plain = plain_env.from_string(compiled_html(renderer, kind))
        full = {**context, "kind": kind, "subject": "s", "preheader": "p", "locale": "en", "timezone": "UTC"}
        ours = rate(lambda k=kind, c=context: renderer.render(k, c), seconds / 2)
        reference = rate(lambda p=plain, f=full: p.render(f), seconds / 2)
        yield kind, ours, reference


def measure(args: argparse.Namespace) -> list:
    """One figure per email kind: trackmail's renders per second beside a plain Jinja2 render."""
    from bench.report import Figure  # here, so `python bench/render.py` still runs as a plain script

    results = compare(getattr(args, "seconds", 2.0))
    compile_ms = next(results)
    figures = [Figure("render", f"compile all {len(EMAIL_KINDS)} kinds once", compile_ms, "ms")]
    times = []
    for kind, ours, reference in results:
        figures.append(Figure("render", f"render {kind}", ours, "emails/s", reference_name="plain Jinja2 render",
                              reference=reference))
        times.append((1e6 / ours, 1e6 / reference))
    ours_us, plain_us = sorted(times)[len(times) // 2]  # the kind with the median time of ours, and its reference
    figures.append(Figure("render", f"time per email, median of {len(times)} kinds", ours_us, "µs",
                          reference_name="plain Jinja2 render", reference=plain_us, target="≤ 2× plain Jinja2",
                          met=ours_us <= 2 * plain_us))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    args = parser.parse_args()
    results = compare(args.seconds)
    print(f"compile all {len(EMAIL_KINDS)} kinds once: {next(results):.0f} ms")
    print(f"{'kind':<24}{'trackmail/s':>12}{'plain jinja/s':>15}{'ratio':>8}")
    ratios = []
    for kind, ours, reference in results:
        ratios.append(reference / ours)
        print(f"{kind:<24}{ours:>12.0f}{reference:>15.0f}{reference / ours:>7.2f}×")
    print(f"median: trackmail takes {sorted(ratios)[len(ratios) // 2]:.2f}× the time of a plain Jinja2 render")


def compiled_html(renderer: Renderer, kind: str) -> str:
    import mjml

    from emails.render import CONTENT_MARKER, split_front_matter

    base = renderer.find("base.mjml").read_text()
    kind_file = renderer.find(f"{kind}.mjml")
    _fields, body, _line = split_front_matter(kind_file.read_text(), kind_file)
    return mjml.mjml2html(base.replace(CONTENT_MARKER, body))


if __name__ == "__main__":
    main()
