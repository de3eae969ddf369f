"""Messages and the senders that deliver them.

Error tree::

    SendError
    ├── TransientSendError   the server is down or busy: retried with backoff
    └── PermanentSendError   the message can never go (bad address, refused): dead-lettered with the reason
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Protocol


class SendError(Exception):
    pass


class TransientSendError(SendError):
    """`server_down`: the server itself cannot be reached, so every other message would fail the same way."""

    def __init__(self, message: str, *, server_down: bool = False) -> None:
        super().__init__(message)
        self.server_down = server_down


class PermanentSendError(SendError):
    """`suppress`: the address itself is dead (hard bounce, inactive at the provider): stop mailing it."""

    def __init__(self, message: str, *, suppress: bool = False) -> None:
        super().__init__(message)
        self.suppress = suppress


@dataclass(frozen=True)
class Message:
    message_id: str  # "<...@domain>", stable for the email row: a resend is recognisably the same message
    sender: str
    to: str
    subject: str
    html: str
    text: str
    date: datetime
    kind: str
    reply_to: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    shop: str = ""  # which shop's transport carries it

    def to_mime(self) -> EmailMessage:
        mime = EmailMessage()
        mime["Message-ID"] = self.message_id
        mime["Date"] = format_datetime(self.date)
        mime["From"] = self.sender
        mime["To"] = self.to
        if self.reply_to:
            mime["Reply-To"] = self.reply_to
        mime["Subject"] = self.subject
        mime["X-Trackmail-Kind"] = self.kind
        for name, value in self.headers.items():
            mime[name] = value
        mime.set_content(self.text)
        mime.add_alternative(self.html, subtype="html")
        return mime


class Sender(Protocol):
    """Delivers one message and returns the provider's id for it."""

    async def send(self, message: Message, name: str) -> str: ...


def _write_atomically(path: Path, data: bytes, durable: bool = True) -> None:
    """Readers see the whole file or none, and a rewrite after a crash replaces rather than doubles."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class OutboxFolderSender:
    """Writes each message as a complete .eml, plus an .html copy to open in a browser.

    The file name comes from the email row (`name`), so sending the same email twice writes the same files.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def send(self, message: Message, name: str) -> str:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            eml = self.folder / f"{name}.eml"
            _write_atomically(self.folder / f"{name}.html", message.html.encode("utf-8"), durable=False)  # a copy
            _write_atomically(eml, bytes(message.to_mime()))
        except OSError as exc:
            raise TransientSendError(f"cannot write to outbox folder {self.folder}: {exc.strerror}",
                                     server_down=True) from exc
        return str(eml)
