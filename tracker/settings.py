"""A typed reader over one TOML table, so every config mistake names the file, the key path and the fix."""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_MISSING = object()


class ConfigError(Exception):
    """A problem in the config file. Names the file and the key path; never contains a secret's value."""

    exit_code = 2

    def __init__(self, file: Path | str, key: str, problem: str) -> None:
        self.file = str(file)
        self.key = key
        self.problem = problem
        where = f"{self.file}: {key}" if key else self.file
        super().__init__(f"{where}: {problem}")


def parse_duration(text: str | float) -> timedelta:
    """'90s', '30m', '48h', '7d', '2w', or a number of seconds."""
    if isinstance(text, bool):
        raise ValueError("expected a duration like '30m', '48h' or '7d'")
    if isinstance(text, (int, float)):
        return timedelta(seconds=text)
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration; write it like '30m', '48h' or '7d'")
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


@dataclass
class Section:
    """One table of the config file with the path that leads to it."""

    file: Path
    path: str
    data: dict[str, Any]

    def _key(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(self.file, self._key(key), problem)

    def _get(self, key: str, default: Any) -> Any:
        value = self.data.get(key, default)
        if value is _MISSING:
            raise self.error(key, "is required")
        return value

    def _resolve(self, key: str, value: str) -> str:
        def env(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:  # ${NAME:-fallback}, as in a shell
                return default
            raise self.error(key, f"environment variable {name} is not set")

        return _ENV_REF.sub(env, value)

    def str(self, key: str, default: Any = _MISSING) -> str:
        value = self._get(key, default)
        if not isinstance(value, str):
            raise self.error(key, f"must be a string, not {type(value).__name__}")
        return self._resolve(key, value)

    def credential(self, key: str, hint: str = "") -> str:
        """A required, non-blank value (an API key, a client id): blank is a mistake, not 'none'."""
        value = self.str(key).strip()
        if not value:
            raise self.error(key, "must not be empty" + (f": {hint}" if hint else ""))
        return value

    def bool(self, key: str, default: Any = _MISSING) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, "must be true or false")
        return value

    def number(self, key: str, default: Any = _MISSING, *, minimum: float | None = None) -> float:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(key, "must be a number")
        if minimum is not None and value < minimum:
            raise self.error(key, f"must be at least {minimum:g}")
        return value

    def int(self, key: str, default: Any = _MISSING, *, minimum: int | None = None) -> int:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, "must be a whole number")
        if minimum is not None and value < minimum:
            raise self.error(key, f"must be at least {minimum}")
        return value

    def duration(self, key: str, default: Any = _MISSING) -> timedelta:
        value = self._get(key, default)
        if isinstance(value, timedelta):
            return value
        try:
            result = parse_duration(value)
        except ValueError as exc:
            raise self.error(key, str(exc)) from None
        if result < timedelta(0):
            raise self.error(key, "must not be negative")
        return result

    def strings(self, key: str, default: Any = _MISSING) -> list[str]:
        value = self._get(key, default)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(key, "must be a list of strings")
        return [self._resolve(key, v) for v in value]

    def table(self, key: str, *, required: bool = False) -> Section:
        value = self.data.get(key, _MISSING if required else {})
        if value is _MISSING:
            raise self.error(key, "is required: add a [" + self._key(key) + "] table")
        if not isinstance(value, dict):
            raise self.error(key, "must be a table")
        return Section(self.file, self._key(key), value)

    def tables(self, key: str) -> dict[str, Section]:
        """A table of named tables, like [couriers.<name>]."""
        outer = self.table(key)
        result = {}
        for name in outer.data:
            result[name] = outer.table(name)
        return result

    def check_keys(self, allowed: set[str] | frozenset[str]) -> None:
        """Refuse keys we do not know: a typo must not silently fall back to a default."""
        for key in self.data:
            if key not in allowed:
                close = difflib.get_close_matches(key, sorted(allowed), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(sorted(allowed))}"
                raise self.error(key, "unknown key" + hint)
