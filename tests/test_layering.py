"""The house rules of the code's layout, checked on the source itself (ast: imports inside functions and under
TYPE_CHECKING count too): no import cycle; adapters are leaves; emails/ never reaches the adapters, the web
or the CLI; modules and functions stay small enough to read."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("tracker", "carriers", "emails")
# What an adapter may import from tracker/: the ground-floor vocabulary, which imports nothing of ours above it.
GROUND_FLOOR = frozenset({"tracker.status", "tracker.clock", "tracker.settings"})
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
MAX_LINE_CHARS = 120  # pyproject.toml [tool.ruff] line-length: no cramming code into long lines to fit


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, Path]:
    """Every module of the three packages, migrations aside (Alembic loads those by path, not by import)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if "migrations" not in path.relative_to(REPO).parts:
                found[module_name(path)] = path
    return found


MODULES = package_modules()


def _ours(name: str) -> str | None:
    """The module of ours that `name` (a module, or a name inside one) lives in, if any."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imported_names(module: str, path: Path) -> Iterator[str]:
    """Every dotted name an import statement anywhere in the module mentions: `from a.b import c` gives
    `a.b.c` (c may be a module) and `a.b` (it is imported either way)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        targets = {_ours(name) for name in imported_names(module, path)}
        graph[module] = {t for t in targets if t is not None and t != module}
    return graph


GRAPH = import_graph()


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_loop_and_nothing_else() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "e"}, "e": set(), "f": {"f"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_the_graph_holds_lazy_and_relative_imports(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("from __future__ import annotations\nimport carriers.dhl\nfrom typing import TYPE_CHECKING\n"
                     "if TYPE_CHECKING:\n    from tracker.config import Config\n"
                     "def later():\n    from emails.outbox import Outbox\n")
    names = set(imported_names("carriers.probe", probe))
    assert {"carriers.dhl", "tracker.config.Config", "emails.outbox.Outbox"} <= names
    assert {_ours(n) for n in names} >= {"carriers.dhl", "tracker.config", "emails.outbox"}


def test_no_import_cycles() -> None:
    assert cycles(GRAPH) == []


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.split(".")[0] == "carriers"))
def test_adapters_are_leaves(module: str) -> None:
    """Besides carriers/, only the ground floor: an adapter never sees the config, the jobs, the web or emails."""
    above = sorted(t for t in GRAPH[module] if t.split(".")[0] != "carriers" and t not in GROUND_FLOOR)
    assert above == [], f"{module} imports {above}"


def test_the_ground_floor_imports_nothing_of_ours_above_it() -> None:
    for module in GROUND_FLOOR:
        assert GRAPH[module] <= GROUND_FLOOR, f"{module} imports {sorted(GRAPH[module] - GROUND_FLOOR)}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.split(".")[0] == "emails"))
def test_emails_never_reach_the_adapters_the_web_or_the_cli(module: str) -> None:
    forbidden = sorted(t for t in GRAPH[module]
                       if t.split(".")[0] == "carriers" or t.startswith("tracker.web") or t == "tracker.cli")
    assert forbidden == [], f"{module} imports {forbidden}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_and_functions_stay_small(module: str) -> None:
    path = MODULES[module]
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) <= MAX_MODULE_LINES, f"{path.name}: {len(lines)} lines"
    wide = [number for number, line in enumerate(lines, 1) if len(line) > MAX_LINE_CHARS]
    assert wide == [], f"{path.name}: lines {wide} are over {MAX_LINE_CHARS} characters"
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)" for node in ast.walk(ast.parse(text))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert long == [], f"{path.name}: {long}"
