"""The sandbox's settings, shared by its shop and its courier, and how they are read from an account's table.

A module of its own so the generation modules (`sandbox_orders` keys its cache by these settings) and the
adapters in `carriers.sandbox` both import it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from carriers.base import COMMON_KEYS
from tracker.settings import Section

KEYS = frozenset({"seed", "orders_per_day", "currencies", "tracking_base_url", "batch_size", "per_day"})


@dataclass(frozen=True, slots=True)
class SandboxSettings:
    seed: int = 7
    orders_per_day: float = 12.0
    currencies: tuple[str, ...] = ("EUR", "USD", "GBP")
    tracking_base_url: str = "https://track.example.com/sandbox/"
    batch_size: int = 50  # numbers per call; 1 plays a courier like DHL or USPS that takes one at a time
    per_day: int | None = None  # a simulated daily quota: over it, calls are refused with 429 until midnight

    def __post_init__(self) -> None:
        # Config may hand us a list; the settings key the generation caches, so they must be hashable.
        object.__setattr__(self, "currencies", tuple(self.currencies))
        if self.orders_per_day < 0:
            raise ValueError(f"orders_per_day must be >= 0, not {self.orders_per_day}")
        if not self.currencies:
            raise ValueError("currencies must name at least one currency")


def settings_from_section(section: Section) -> SandboxSettings:
    """The account's own keys, refusing unknown ones so a typo never silently falls back to a default."""
    section.check_keys(COMMON_KEYS | KEYS)
    defaults = SandboxSettings()
    currencies = section.strings("currencies", list(defaults.currencies))
    if not currencies:
        raise section.error("currencies", "must name at least one currency")
    return SandboxSettings(
        seed=section.int("seed", defaults.seed),
        orders_per_day=float(section.number("orders_per_day", defaults.orders_per_day, minimum=0)),
        currencies=tuple(currencies),
        tracking_base_url=section.str("tracking_base_url", defaults.tracking_base_url),
        batch_size=section.int("batch_size", defaults.batch_size, minimum=1),
        per_day=section.int("per_day", minimum=1) if "per_day" in section.data else None,
    )
