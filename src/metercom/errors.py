"""The one exception tree of metercom (DESIGN.md section 4).

Every public exception derives from :class:`MetercomError`. Each layer raises only its own
branch and translates foreign exceptions at its boundary with ``raise ... from exc``, so an
``OSError`` or ``serial.SerialException`` never reaches the service layer raw.

How callers act on the classes:

* :class:`TransportError`: I/O trouble, retryable with backoff.
* :class:`RemoteProtocolError`: the peer sent something corrupt or illegal; keep the bytes,
  retry once, then quarantine.
* :class:`DeviceRejectedError`: the meter understood and said no; record, do not retry.
* :class:`AuthenticationError`: wrong password/key; stop using that meter and raise an alarm.

Messages say what happened, expected versus actual, a short hex dump where bytes are involved,
and the fix when known. They never contain a key or a password.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AuthenticationError",
    "ConfigError",
    "ConnectError",
    "ConnectionLost",
    "DeviceRejectedError",
    "FrameError",
    "InputError",
    "LocalProtocolError",
    "MetercomError",
    "NotifyError",
    "PrepaidError",
    "ProtocolError",
    "RemoteProtocolError",
    "RuleError",
    "ServiceError",
    "StoreError",
    "TransportError",
    "TransportTimeout",
    "UploadError",
    "hexdump",
]


def hexdump(data: bytes, limit: int = 32) -> str:
    """Return a short hex dump of ``data`` for error messages: ``"01 42 30 .. (+12 bytes)"``."""
    shown = data[:limit].hex(" ")
    if len(data) > limit:
        shown += f" .. (+{len(data) - limit} bytes)"
    return shown or "(no bytes)"


class MetercomError(Exception):
    """Root of every exception metercom raises on purpose."""

    #: Process exit code the CLI uses for this class.
    exit_code: ClassVar[int] = 1


class ProtocolError(MetercomError):
    """A protocol rule was broken; raised by codec code only.

    ``layer`` names the protocol layer (``"iec62056-21"``, ``"hdlc"``, ``"axdr"``...), so a
    message can say where in the stack the problem was found.
    """

    exit_code = 3

    def __init__(self, message: str, *, layer: str = "", data: bytes | None = None) -> None:
        self.layer = layer
        self.data = data
        text = f"{layer}: {message}" if layer else message
        if data is not None:
            text += f" [{hexdump(data)}]"
        super().__init__(text)


class LocalProtocolError(ProtocolError):
    """We asked the codec for something illegal (a programming error on our side or the caller's)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something illegal or corrupt. The only exception ``next_event()`` raises."""


class FrameError(RemoteProtocolError):
    """A frame failed its integrity checks (FCS, HCS, BCC, CRC, length)."""


class TransportError(MetercomError):
    """I/O failed or timed out; retryable."""

    exit_code = 4


class ConnectError(TransportError):
    """The link could not be opened (port missing or busy, connection refused, bad URL target)."""


class TransportTimeout(TransportError):
    """Nothing (or not enough) arrived in time."""


class ConnectionLost(TransportError):
    """The peer closed the link or the device vanished in the middle of a conversation."""


class DeviceRejectedError(MetercomError):
    """The meter understood the request and refused it.

    ``code`` is the protocol's own result code (DLMS Data-Access-Result, Modbus exception code,
    the text of an IEC 62056-21 error message...). Protocol modules define one subclass per spec
    code from a table, so callers can catch precisely.
    """

    exit_code = 5

    def __init__(self, message: str, *, code: int | str | None = None) -> None:
        self.code = code
        super().__init__(message)


class AuthenticationError(MetercomError):
    """Password, key or authentication tag was not accepted. Not retryable."""

    exit_code = 6


class ConfigError(MetercomError):
    """Invalid configuration or invalid user input, found before any I/O starts."""

    exit_code = 2

    def __init__(self, message: str, *, where: str | None = None) -> None:
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class InputError(ConfigError, ValueError):
    """A value given by a user (OBIS code, URL, address, option) could not be understood."""


class ServiceError(MetercomError):
    """A failure of the head-end's own machinery (store, upload, rules, prepaid...)."""

    exit_code = 7


class StoreError(ServiceError):
    """The local store could not read or write."""


class UploadError(ServiceError):
    """Readings could not be forwarded upstream, or the central system did not confirm them."""


class PrepaidError(ServiceError):
    """A prepaid account operation was refused (conflicting top-up, unknown amount, bad reading)."""


class NotifyError(ServiceError):
    """An alarm could not be delivered or an alarm operation was refused."""


class RuleError(ServiceError):
    """A rule or its expression is invalid, or could not be evaluated (see ``metercom.service.rules``)."""
