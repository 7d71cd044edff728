"""E-mail channel: one message per notification over SMTP (aiosmtplib), with TLS and AUTH.

Rule: the password is a secret *reference* (``env:SMTP_PW``, ``file:/...``; see
:mod:`metercom.service.secrets`), resolved at each send so a rotated secret is picked up, and
never logged or put in an error message. Authentication over an unencrypted connection is
refused at construction unless explicitly allowed (``allow_plain_auth=True``, for a relay on
the same host).

Theory of operation: each :meth:`SmtpChannel.send` opens a connection, optionally upgrades it
(``tls="starttls"``, port 587) or starts encrypted (``tls="implicit"``, port 465), logs in when a
user is configured, sends one ``text/plain`` message and closes. Alarms are rare enough that a
pooled connection is not worth its failure modes. The TLS context is built once at
construction (system CA store or ``ca_file``; ``verify=False`` only for tests and lab relays),
and the EHLO name is ``local_hostname`` (default: the host name, no DNS lookup), so nothing
blocks the event loop. SMTP replies map to the centre's retry rules: 4xx and network trouble
are retried, 5xx replies, refused addresses, failed logins and certificate errors are permanent.
"""

from __future__ import annotations

import enum
import logging
import socket
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import aiosmtplib

from metercom.clock import Clock, current_clock
from metercom.errors import ConfigError, NotifyError
from metercom.service.notify.alarms import Notification
from metercom.service.notify.channel import PermanentDeliveryError, resolve_secret
from metercom.service.secrets import Secret, SecretRef

__all__ = ["SmtpChannel", "SmtpTls"]

log = logging.getLogger(__name__)


class SmtpTls(enum.StrEnum):
    """How the connection is protected."""

    NONE = "none"
    STARTTLS = "starttls"
    IMPLICIT = "implicit"


_DEFAULT_PORTS = {SmtpTls.NONE: 25, SmtpTls.STARTTLS: 587, SmtpTls.IMPLICIT: 465}


class SmtpChannel:
    """Sends notifications as e-mail to fixed ``recipients`` (see the module docstring)."""

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *,
        sender: str,
        recipients: Sequence[str],
        tls: SmtpTls = SmtpTls.STARTTLS,
        username: str | None = None,
        password: SecretRef | Secret | None = None,
        ca_file: str | Path | None = None,
        verify: bool = True,
        timeout_s: float = 30.0,
        local_hostname: str | None = None,
        subject_prefix: str = "[metercom]",
        allow_plain_auth: bool = False,
        clock: Clock | None = None,
    ) -> None:
        if not recipients:
            raise ConfigError("an e-mail channel needs at least one recipient", where="smtp")
        if "@" not in sender or any("@" not in r for r in recipients):
            raise ConfigError("sender and recipients must be e-mail addresses", where="smtp")
        if (username is None) != (password is None):
            raise ConfigError(
                "give both username and password (a secret reference), or neither", where="smtp"
            )
        if password is not None and tls is SmtpTls.NONE and not allow_plain_auth:
            raise ConfigError(
                "refusing to log in over an unencrypted connection (the password would travel in clear); "
                "use tls='starttls' or 'implicit', or allow_plain_auth=True for a local relay",
                where="smtp",
            )
        if timeout_s <= 0:
            raise ConfigError("timeout_s must be positive", where="smtp")
        self.host = host
        self.port = port or _DEFAULT_PORTS[tls]
        self.sender = sender
        self.recipients = tuple(recipients)
        self.tls = tls
        self.username = username
        self._password = password
        self.timeout_s = timeout_s
        self.local_hostname = local_hostname or socket.gethostname() or "localhost"
        self.subject_prefix = subject_prefix
        self._clock = clock
        self._context: ssl.SSLContext | None = None
        if tls is not SmtpTls.NONE:
            try:
                context = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"cannot load CA file {ca_file}: {exc}", where="smtp") from exc
            if not verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._context = context

    def __repr__(self) -> str:
        auth = f", user={self.username!r}, password={self._password!s}" if self.username else ""
        return f"SmtpChannel({self.host}:{self.port}, tls={self.tls.value}{auth})"

    def build_message(self, notification: Notification) -> EmailMessage:
        """The e-mail for ``notification``."""
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message["Subject"] = f"{self.subject_prefix} {notification.subject()}".strip()
        message["Date"] = format_datetime((self._clock or current_clock()).now())
        message["Message-ID"] = make_msgid(idstring=notification.notification_id, domain=self.local_hostname)
        message["X-Metercom-Alarm"] = notification.alarm_id
        message["X-Metercom-Notification"] = notification.notification_id
        message["X-Metercom-Event"] = notification.event.value
        message.set_content(notification.text())
        return message

    async def send(self, notification: Notification) -> None:
        """Send one e-mail; raises NotifyError (retry) or PermanentDeliveryError."""
        password = None
        if self._password is not None:
            password = resolve_secret(self._password, f"smtp {self.host}")
        message = self.build_message(notification)
        try:
            await aiosmtplib.send(
                message,
                sender=self.sender,
                recipients=list(self.recipients),
                hostname=self.host,
                port=self.port,
                username=self.username,
                password=password,
                use_tls=self.tls is SmtpTls.IMPLICIT,
                start_tls=self.tls is SmtpTls.STARTTLS,
                tls_context=self._context,
                timeout=self.timeout_s,
                local_hostname=self.local_hostname,
            )
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise PermanentDeliveryError(
                f"smtp {self.host}:{self.port}: login as {self.username!r} refused ({exc.code}); "
                f"check the password in {self._password}"
            ) from None
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = ", ".join(r.recipient for r in exc.recipients)
            raise PermanentDeliveryError(
                f"smtp {self.host}:{self.port}: recipients refused: {refused}"
            ) from None
        except aiosmtplib.SMTPResponseException as exc:
            text = f"smtp {self.host}:{self.port}: server replied {exc.code} {exc.message}"
            if 500 <= exc.code < 600:
                raise PermanentDeliveryError(text) from None
            raise NotifyError(text) from None
        except ssl.SSLCertVerificationError as exc:
            raise PermanentDeliveryError(
                f"smtp {self.host}:{self.port}: server certificate not trusted ({exc.verify_message}); "
                "set ca_file to its CA"
            ) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise NotifyError(f"smtp {self.host}:{self.port}: {type(exc).__name__}: {exc}") from None
        log.info("smtp %s:%s: sent %s", self.host, self.port, notification.notification_id)

    async def aclose(self) -> None:
        """Nothing to release: every send uses its own connection."""
