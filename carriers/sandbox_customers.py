"""The sandbox shop's customers: a fixed pool per seed, so customers come back for more.

Each customer is `random.Random(f"{seed}:customer:{index}")` alone, so the pool is the same in every process.
Emails use the reserved example domains (RFC 2606): mail to them never leaves.
"""

from __future__ import annotations

import functools
import random
import unicodedata
from dataclasses import dataclass

from carriers.base import AddressRecord
from carriers.sandbox_numbers import COUNTRIES

EMAIL_DOMAINS = ("example.com", "example.org", "example.net")  # reserved (RFC 2606): mail never leaves

NAMES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "en": (("Olivia", "James", "Amelia", "Noah", "Emily", "Jack", "Sophie", "Harry", "Grace", "Oliver",
            "Charlotte", "Liam", "Ava", "Ethan", "Mia", "Lucas"),
           ("Smith", "Johnson", "Brown", "Taylor", "Wilson", "Davies", "Evans", "Walker", "Clarke", "Hughes",
            "Murphy", "Kelly", "Miller", "Garcia", "Anderson", "O'Brien")),
    "de": (("Anna", "Lukas", "Lea", "Leon", "Hannah", "Felix", "Mia", "Paul", "Emma", "Jonas", "Sophie",
            "Maximilian", "Lena", "Elias", "Marie", "Jürgen"),
           ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Hoffmann",
            "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf", "Groß")),
    "fr": (("Camille", "Louis", "Léa", "Gabriel", "Chloé", "Hugo", "Manon", "Jules", "Inès", "Arthur",
            "Zoé", "Raphaël", "Élodie", "Théo", "Margaux", "François"),
           ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy",
            "Moreau", "Simon", "Laurent", "Lefèvre", "Michel", "Garnier", "Faure")),
}


@dataclass(frozen=True, slots=True)
class Customer:
    id: str
    name: str
    email: str
    locale: str
    marketing_consent: bool
    address: AddressRecord
    city_index: int


def _ascii(text: str) -> str:
    flat = unicodedata.normalize("NFKD", text.replace("ß", "ss"))
    return "".join(c for c in flat if c.isascii() and c.isalnum()).lower()


def _fill(rng: random.Random, pattern: str) -> str:
    letters = "ABDEFGHJLNPQRSTUWXYZ"  # the letters postcodes use, without look-alikes
    return "".join(str(rng.randrange(10)) if c == "#" else rng.choice(letters) if c == "@" else c
                   for c in pattern)


def _customer(seed: int, index: int, taken: set[str]) -> Customer:
    rng = random.Random(f"{seed}:customer:{index}")
    country = rng.choices(list(COUNTRIES.values()), weights=[c.weight for c in COUNTRIES.values()])[0]
    firsts, lasts = NAMES[country.locale]
    first, last = rng.choice(firsts), rng.choice(lasts)
    given, family = _ascii(first), _ascii(last)
    local = rng.choice((f"{given}.{family}", f"{given}{family}", f"{given[0]}{family}",
                        f"{given}.{family}{rng.randrange(60, 100)}", f"{family}.{given}"))
    email = f"{local}@{rng.choice(EMAIL_DOMAINS)}"
    if email in taken:  # shops key customers by email: two namesakes must not merge
        email = f"{local}.{index}@{email.split('@')[1]}"
    taken.add(email)
    city_index = rng.randrange(len(country.cities))
    city = country.cities[city_index]
    address = AddressRecord(f"{first} {last}", city.name, _fill(rng, city.postcode), country.code)
    return Customer(f"sb-customer-{index + 1}", f"{first} {last}", email, country.locale,
                    rng.random() < 0.7, address, city_index)


@functools.lru_cache(maxsize=64)
def customers(seed: int, size: int) -> tuple[Customer, ...]:
    """A fixed pool, about 20 days of orders deep, so customers come back."""
    taken: set[str] = set()
    return tuple(_customer(seed, i, taken) for i in range(size))
