"""Sending through an SMTP server (STARTTLS, implicit TLS or plain on a trusted network, with login).

The standard library's smtplib does the protocol; it runs in a worker thread so the daemon's loop keeps
going. SMTP answers sort themselves: 4xx means "try later", 5xx means "never", and a server that cannot be
reached is down, which is temporary. A refused login is a configuration problem, not the recipient's: it is
retried (and logged loudly) rather than dead-lettering every email while a person fixes the password.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import dataclass
from email.utils import parseaddr

from emails.send import Message, PermanentSendError, TransientSendError
from tracker.settings import Section

SECURITY = ("starttls", "tls", "none")


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 587
    security: str = "starttls"  # "tls" = implicit TLS (port 465); "none" only for a relay on a trusted network
    username: str = ""
    password: str = ""
    timeout: float = 30.0
    verify_certificate: bool = True

    @classmethod
    def from_section(cls, section: Section) -> SmtpSettings:
        section.check_keys({"type", "host", "port", "security", "username", "password", "timeout",
                            "verify_certificate"})
        security = section.str("security", "starttls")
        if security not in SECURITY:
            raise section.error("security", f"must be one of {', '.join(SECURITY)}")
        default_port = {"starttls": 587, "tls": 465, "none": 25}[security]
        return cls(host=section.str("host"), port=section.int("port", default_port, minimum=1),
                   security=security, username=section.str("username", ""), password=section.str("password", ""),
                   timeout=section.number("timeout", 30.0, minimum=1),
                   verify_certificate=section.bool("verify_certificate", True))


def _classify(code: int, text: str, what: str) -> Exception:
    detail = f"{what}: {code} {text}".strip()
    if not 500 <= code < 600:
        return TransientSendError(detail)
    # 5.1.1 / 5.1.10: no such mailbox; 5.2.1: mailbox disabled. The address itself is dead.
    dead_address = any(f" {status}" in f" {text}" for status in ("5.1.1", "5.1.10", "5.2.1"))
    return PermanentSendError(detail, suppress=dead_address)


def _decode(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


class SmtpSender:
    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    def _context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if not self.settings.verify_certificate:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if s.security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=self._context())
        else:
            client = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            if s.security == "starttls":
                client.starttls(context=self._context())
        if s.username:
            client.login(s.username, s.password)
        return client

    def _send(self, message: Message) -> str:
        where = f"SMTP {self.settings.host}:{self.settings.port}"
        try:
            client = self._connect()
        except smtplib.SMTPAuthenticationError as exc:
            raise TransientSendError(f"{where}: login refused ({exc.smtp_code}); check username/password",
                                     server_down=True) from exc
        except smtplib.SMTPResponseException as exc:  # refused at the greeting or STARTTLS: the server's side
            detail = f"{where}: refused the connection: {exc.smtp_code} {_decode(exc.smtp_error)}"
            raise TransientSendError(detail, server_down=True) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientSendError(f"{where}: cannot connect: {exc}", server_down=True) from exc
        try:
            refused = client.send_message(message.to_mime(), from_addr=parseaddr(message.sender)[1],
                                          to_addrs=[parseaddr(message.to)[1]])
        except smtplib.SMTPSenderRefused as exc:  # our From address, not this recipient: fix config, then retry
            raise TransientSendError(f"{where} refused the sender {message.sender}: {exc.smtp_code} "
                                     f"{_decode(exc.smtp_error)}", server_down=True) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            raise _classify(code, _decode(text), f"{where} refused {message.to}") from exc
        except smtplib.SMTPResponseException as exc:
            raise _classify(exc.smtp_code, _decode(exc.smtp_error), where) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientSendError(f"{where}: connection lost while sending: {exc}") from exc
        finally:
            try:
                client.quit()
            except (OSError, smtplib.SMTPException):
                client.close()
        if refused:  # pragma: no cover - one recipient per message: refusals raise above
            raise PermanentSendError(f"{where} refused {', '.join(refused)}")
        return message.message_id

    async def send(self, message: Message, name: str) -> str:
        return await asyncio.to_thread(self._send, message)
