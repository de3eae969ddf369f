"""`trackmail check`: everything that can be verified without sending an email."""

from __future__ import annotations

from pathlib import Path

from carriers import build_courier, build_marketplace
from emails.context import sample_context
from emails.kinds import EMAIL_KINDS
from emails.render import Renderer, TemplateError
from tracker.app import build_senders
from tracker.clock import system_clock
from tracker.config import Config
from tracker.settings import ConfigError


def template_locales(folders: list[Path]) -> set[str]:
    """Locales some template is written in: the middle part of `kind.<locale>.mjml`."""
    return {path.name.split(".")[1] for folder in folders for path in folder.glob("*.*.mjml")}


def check(config: Config) -> tuple[list[str], list[str]]:
    """(problems, notes): every template of every shop rendered with sample data, every account built."""
    problems: list[str] = []
    notes = [f"config {config.path} is valid"]
    accounts = [("marketplace", build_marketplace, config.marketplaces), ("courier", build_courier, config.couriers)]
    for what, build, configured in accounts:
        for name, account in configured.items():
            try:
                build(account, system_clock)
                notes.append(f"{what} {name} ({account.type}) is configured")
            except ConfigError as exc:
                problems.append(str(exc))
    try:
        build_senders(config)
        notes.append(f"email transport {config.emails.transport} is configured")
    except ConfigError as exc:
        problems.append(str(exc))
    for key, shop in config.shops.items():
        renderer = Renderer(shop.templates_dir)
        locales = [None, *sorted(template_locales(renderer.folders))]
        failed = 0
        for locale in locales:
            for kind in EMAIL_KINDS:
                try:
                    renderer.render(kind, sample_context(kind, shop), locale=locale)
                except TemplateError as exc:
                    failed += 1
                    problems.append(f"shop {key}, {kind} ({locale or 'en'}): {exc}")
        if not failed:
            names = ", ".join(loc or "en" for loc in locales)
            notes.append(f"shop {key}: all {len(EMAIL_KINDS)} templates render in {names}")
    return problems, notes
