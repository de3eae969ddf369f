"""Every benchmark in one run, one table: each figure beside its reference, as a ratio.

    python -m bench.run [--only parse,memory] [--memory-shipments 1000000] [--rebuild]

Runs each bench module's `measure(args)` in turn. A module that is not in this checkout is skipped with a
note; one that fails is reported and the others still run. Each module gets its own defaults (its
`parser()` when it has one), so options of the same name in two modules cannot collide. Not a test: the
figures depend on the machine, and on what else it is doing (medians and interleaved runs soften that).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback

from bench.report import Figure, table

MODULES = ("render", "parse", "cli_start", "memory", "http", "pipeline", "polling")


def module_args(module: object, name: str, args: argparse.Namespace) -> argparse.Namespace:
    """The module's own defaults, plus what this command line says for it."""
    own = getattr(module, "parser", None)
    namespace = own().parse_args([]) if callable(own) else argparse.Namespace()
    if name == "memory":
        namespace.shipments, namespace.rebuild = args.memory_shipments, args.rebuild
    return namespace


def run(names: list[str], args: argparse.Namespace) -> list[Figure]:
    figures: list[Figure] = []
    for name in names:
        try:
            module = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"bench.{name}":
                raise
            print(f"note: bench/{name}.py is not in this checkout; skipped", file=sys.stderr)
            continue
        start = time.perf_counter()
        print(f"running bench.{name} …", file=sys.stderr, flush=True)
        try:
            found = module.measure(module_args(module, name, args))
        except Exception:  # one broken benchmark must not hide the others' figures
            print(f"note: bench.{name} failed:\n{traceback.format_exc()}", file=sys.stderr)
            continue
        print(f"  {len(found)} figures in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
        figures += found
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help=f"comma-separated, from: {', '.join(MODULES)}")
    parser.add_argument("--memory-shipments", type=int, default=1_000_000)
    parser.add_argument("--rebuild", action="store_true", help="build the memory benchmark's database again")
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",")] if args.only else list(MODULES)
    unknown = set(names) - set(MODULES)
    if unknown:
        parser.error(f"unknown benchmark {', '.join(sorted(unknown))}")
    print(table(run(names, args)))


if __name__ == "__main__":
    main()
