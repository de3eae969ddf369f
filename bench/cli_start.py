"""Wall time of `trackmail` commands that need no database, from process start to exit, beside `python -c pass`.

    python -m bench.cli_start [--runs 10]

Each command runs in a fresh process (the installed `trackmail` script when there is one, else
`python -m tracker.cli`), medians of `--runs` runs, the commands interleaved so a busy neighbour slows them
all alike. Help screens are pure start-up: the target is for them. `preview` and `check` do real work after
starting (render one email; validate the config and render every template in every locale), so they are
listed for information with the import time of their modules, and no target.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.report import Figure, table

REPO = Path(__file__).resolve().parents[1]
TARGET_MS = 300.0
SUBCOMMANDS = ("run", "simulate", "shipments", "emails", "web", "coupons", "sync", "suppress", "preview",
               "track", "check")


def trackmail() -> list[str]:
    script = Path(sys.executable).with_name("trackmail")
    return [str(script)] if script.exists() else [sys.executable, "-m", "tracker.cli"]


def commands(out: Path) -> dict[str, tuple[list[str], bool]]:
    """name → (arguments, is pure start-up). Runs from the repository, on its bundled config.toml."""
    config = ["--config", str(REPO / "config.toml")]
    found = {"trackmail --help": (["--help"], True)}
    found.update({f"trackmail {name} --help": ([name, "--help"], True) for name in SUBCOMMANDS})
    found["trackmail preview delivered --out FILE"] = ([*config, "preview", "delivered", "--out", str(out)], False)
    found["trackmail check"] = ([*config, "check"], False)
    return found


def wall_ms(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return (time.perf_counter() - start) * 1000


def measure(args: argparse.Namespace) -> list[Figure]:
    runs = getattr(args, "runs", 10)
    with tempfile.TemporaryDirectory() as tmp:
        cases = commands(Path(tmp) / "preview.html")
        base = trackmail()
        reference = [sys.executable, "-c", "pass"]
        times: dict[str, list[float]] = {name: [] for name in ["python -c pass", *cases]}
        for _ in range(runs):
            times["python -c pass"].append(wall_ms(reference))
            for name, (arguments, _pure) in cases.items():
                times[name].append(wall_ms([*base, *arguments]))
    python = statistics.median(times["python -c pass"])
    figures = []
    for name, (_arguments, pure) in cases.items():
        value = statistics.median(times[name])
        figures.append(Figure("cli", f"{name} (median of {runs})", value, "ms", reference_name="python -c pass",
                              reference=python, target=f"< {TARGET_MS:g} ms" if pure else "",
                              met=value < TARGET_MS if pure else None))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    print(table(measure(parser.parse_args())))


if __name__ == "__main__":
    main()
