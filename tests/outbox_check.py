"""Reading an outbox folder back: what end-to-end tests assert on, the way a customer would see it."""

from __future__ import annotations

import email
from collections import Counter
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SentMail:
    file: Path
    kind: str
    ref: str  # "<kind>:order:<id>" or "<kind>:shipment:<id>"
    message_id: str
    to: str
    subject: str


def read_outbox(folder: Path, *, digests: bool = False) -> list[SentMail]:
    """The customer emails in an outbox folder (and the merchant's digests too if asked)."""
    mails = []
    for path in sorted(folder.glob("*.eml")):
        if path.name.startswith("digest-") and not digests:
            continue
        message = email.message_from_bytes(path.read_bytes())
        mails.append(SentMail(path, message["X-Trackmail-Kind"], message["X-Trackmail-Ref"],
                              message["Message-ID"], message["To"], message["Subject"]))
    return mails


def duplicates(mails: list[SentMail]) -> dict[str, int]:
    """Refs or Message-IDs that appear in more than one file: each is an email a customer got twice."""
    counts = Counter(m.ref for m in mails) + Counter(m.message_id for m in mails)
    return {key: n for key, n in counts.items() if n > 1}
