"""Templates → subject, HTML and text.

A kind's MJML is pasted into the shop's base layout and compiled to HTML once; the Jinja2 template built from
that HTML is cached, so each email costs one Jinja2 render (building the template costs ~60× a render).
Jinja runs sandboxed and autoescaped: customer data is always text, never markup or code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from jinja2 import pass_context
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

BUILTIN_DIR = Path(__file__).parent / "templates"
CONTENT_MARKER = "<!-- trackmail:content -->"
DEFAULT_LOCALE = "en"


class TemplateError(Exception):
    """A template that cannot be compiled or rendered. Names the file and, where known, the line."""

    def __init__(self, file: Path | str, problem: str, line: int | None = None) -> None:
        self.file = str(file)
        self.line = line
        self.problem = problem
        where = f"{self.file}:{line}" if line else self.file
        super().__init__(f"{where}: {problem}")


@lru_cache(maxsize=256)
def babel_locale(locale: str | None) -> str:
    """A locale Babel knows: 'de-US' (a real shop customer) falls back to 'de', anything unknown to English.
    A customer's odd locale must never stop their order emails."""
    from babel import Locale, UnknownLocaleError

    tag = (locale or DEFAULT_LOCALE).replace("-", "_")
    for candidate in (tag, tag.split("_")[0]):
        try:
            Locale.parse(candidate)
            return candidate
        except (UnknownLocaleError, ValueError, TypeError):
            continue
    return DEFAULT_LOCALE


def format_money(amount: Decimal | float | int, currency: str, locale: str = DEFAULT_LOCALE) -> str:
    from babel.numbers import format_currency

    return format_currency(Decimal(str(amount)), currency.upper(), locale=babel_locale(locale))


def format_date(value: date | datetime | None, locale: str = DEFAULT_LOCALE, zone: str = "UTC") -> str:
    from babel.dates import format_skeleton

    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.astimezone(ZoneInfo(zone))
    return format_skeleton("yMMMEd", value, locale=babel_locale(locale))


def format_datetime(value: datetime | None, locale: str = DEFAULT_LOCALE, zone: str = "UTC") -> str:
    from babel.dates import format_time

    if value is None:
        return ""
    local = value.astimezone(ZoneInfo(zone))
    clock = format_time(local, "short", locale=babel_locale(locale))
    return f"{format_date(local, locale, zone)}, {clock} {local.tzname()}"


def _locale_of(ctx: Context) -> tuple[str, str]:
    return ctx.get("locale") or DEFAULT_LOCALE, ctx.get("timezone") or "UTC"


@pass_context
def _money(ctx: Context, amount: Decimal, currency: str) -> str:
    return format_money(amount, currency, _locale_of(ctx)[0])


@pass_context
def _date(ctx: Context, value: date | datetime | None) -> str:
    return format_date(value, *_locale_of(ctx))


@pass_context
def _datetime(ctx: Context, value: datetime | None) -> str:
    return format_datetime(value, *_locale_of(ctx))


def _environment(autoescape: bool) -> SandboxedEnvironment:
    env = SandboxedEnvironment(autoescape=autoescape, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters.update(money=_money, date=_date, datetime=_datetime)
    return env


def locale_candidates(locale: str | None) -> list[str]:
    """'de-AT' → ['de_AT', 'de']: the most specific template that exists wins, English is the fallback."""
    if not locale:
        return []
    tag = locale.replace("-", "_")
    base = tag.split("_")[0].lower()
    return [tag, base] if tag != base else [base]


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


@dataclass(frozen=True)
class CompiledKind:
    subject: jinja2.Template
    preheader: jinja2.Template
    html: jinja2.Template
    text: jinja2.Template


def split_front_matter(source: str, file: Path) -> tuple[dict[str, str], str, int]:
    """`key: value` lines, a `---` line, then the MJML body. Returns the fields, the body and the line the
    body starts on (so errors in the body point at the right line of the file)."""
    head, sep, body = source.partition("\n---\n")
    if not sep:
        raise TemplateError(file, "missing the '---' line that ends the subject/preheader header")
    fields = {}
    for number, line in enumerate(head.splitlines(), start=1):
        if not line.strip():
            continue
        key, colon, value = line.partition(":")
        if not colon or key.strip() not in {"subject", "preheader"}:
            raise TemplateError(file, "header lines must be 'subject: ...' or 'preheader: ...'", number)
        fields[key.strip()] = value.strip()
    if "subject" not in fields:
        raise TemplateError(file, "the header has no 'subject:' line")
    return fields, body, head.count("\n") + 3


class Renderer:
    """Renders every kind for one shop; a file in the shop's templates folder overrides the built-in one."""

    def __init__(self, templates_dir: Path | None = None) -> None:
        self.folders = [d for d in (templates_dir, BUILTIN_DIR) if d is not None]
        self._html_env = _environment(autoescape=True)
        self._text_env = _environment(autoescape=False)
        self._cache: dict[tuple[str, str], CompiledKind] = {}
        self._locales: dict[tuple[str, str | None], str] = {}

    def find(self, name: str, locale: str | None = None) -> Path:
        """`kind.de.mjml` before `kind.mjml`, and the shop's folder before the built-ins, for each."""
        stem, _dot, suffix = name.rpartition(".")
        names = [f"{stem}.{tag}.{suffix}" for tag in locale_candidates(locale)] + [name]
        for candidate in names:
            for folder in self.folders:
                path = folder / candidate
                if path.is_file():
                    return path
        raise TemplateError(name, f"no template named {name} in {', '.join(map(str, self.folders))}")

    def locale_used(self, kind: str, locale: str | None) -> str:
        """The locale whose template `kind` is rendered from: the customer's when it exists, else English.
        Remembered per renderer: templates change only with a restart (or `trackmail check`)."""
        key = (kind, locale)
        if key not in self._locales:
            parts = self.find(f"{kind}.mjml", locale).name.split(".")
            self._locales[key] = parts[1] if len(parts) == 3 else DEFAULT_LOCALE
        return self._locales[key]

    def _parse(self, env: SandboxedEnvironment, source: str, file: Path, first_line: int = 1) -> None:
        """Catch Jinja syntax errors against the file the merchant edits, not the compiled HTML."""
        try:
            env.parse("\n" * (first_line - 1) + source)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(file, exc.message or "syntax error", exc.lineno) from None

    def _template(self, env: SandboxedEnvironment, source: str, file: Path) -> jinja2.Template:
        try:
            return env.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(file, exc.message or "syntax error", exc.lineno) from None

    def compile(self, kind: str, locale: str | None = None) -> CompiledKind:
        used = self.locale_used(kind, locale)
        key = (kind, used)
        if key in self._cache:
            return self._cache[key]
        import mjml  # imported here: `trackmail --help` must not pay for it

        tag = None if used == DEFAULT_LOCALE else used
        kind_file = self.find(f"{kind}.mjml", tag)
        base_file = self.find("base.mjml", tag)
        text_file = self.find(f"{kind}.txt", tag)
        base = base_file.read_text(encoding="utf-8")
        if CONTENT_MARKER not in base:
            raise TemplateError(base_file, f"the layout has no {CONTENT_MARKER} line for the content")
        fields, body, first_line = split_front_matter(kind_file.read_text(encoding="utf-8"), kind_file)
        self._parse(self._html_env, base, base_file)
        self._parse(self._html_env, body, kind_file, first_line)
        try:
            html = mjml.mjml2html(base.replace(CONTENT_MARKER, body))
        except ValueError as exc:
            raise TemplateError(kind_file, f"MJML error: {exc}") from None
        compiled = CompiledKind(
            subject=self._template(self._text_env, fields["subject"], kind_file),
            preheader=self._template(self._text_env, fields.get("preheader", ""), kind_file),
            html=self._template(self._html_env, html, kind_file),
            text=self._template(self._text_env, text_file.read_text(encoding="utf-8"), text_file),
        )
        self._cache[key] = compiled
        return compiled

    def render(self, kind: str, context: dict[str, Any], locale: str | None = None) -> Rendered:
        """Render in the customer's locale when a template for it exists; money and dates follow the
        customer's locale only then, so an English email never mixes in German number formats."""
        compiled = self.compile(kind, locale)
        shown = locale if self.locale_used(kind, locale) != DEFAULT_LOCALE else DEFAULT_LOCALE
        try:
            context = {"timezone": "UTC", **context, "locale": (shown or DEFAULT_LOCALE).replace("-", "_")}
            subject = " ".join(compiled.subject.render(context).split())  # one header line, always
            preheader = " ".join(compiled.preheader.render(context).split())
            full = {**context, "kind": kind, "subject": subject, "preheader": preheader}
            return Rendered(subject, compiled.html.render(full), compiled.text.render(full))
        except (jinja2.TemplateError, ValueError, LookupError) as exc:
            raise TemplateError(self.find(f"{kind}.mjml", locale), f"cannot render: {exc}") from None
