"""What a delivery channel is, and the errors that tell the alarm centre whether to retry.

Rule: a channel delivers one :class:`~metercom.service.notify.alarms.Notification` per
:meth:`Channel.send` call and either returns (delivered) or raises. It raises
:class:`~metercom.errors.NotifyError` for a failure worth retrying (network down, server busy),
:class:`RetryLater` when the server said how long to wait, and
:class:`PermanentDeliveryError` when retrying cannot help (bad credentials, address refused,
endpoint gone). Anything else a channel lets escape is treated like ``NotifyError``. Messages
never contain a password or key, only the reference it came from.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from metercom.errors import ConfigError, NotifyError
from metercom.service.notify.alarms import Notification
from metercom.service.secrets import Secret, SecretRef

__all__ = ["Channel", "PermanentDeliveryError", "RetryLater", "resolve_secret"]


class PermanentDeliveryError(NotifyError):
    """Delivery failed and retrying cannot help (configuration or refusal)."""


class RetryLater(NotifyError):
    """Delivery failed; the server asked to wait ``retry_after_s`` seconds."""

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)


@runtime_checkable
class Channel(Protocol):
    """A way to deliver notifications (e-mail, webhook ...)."""

    async def send(self, notification: Notification) -> None:
        """Deliver one notification or raise (see the module docstring)."""

    async def aclose(self) -> None:
        """Release connections; the channel is not used afterwards."""


def resolve_secret(secret: SecretRef | Secret, what: str) -> str:
    """The secret's text, resolving a reference now; failures name the reference, not the value."""
    if isinstance(secret, Secret):
        return secret.reveal()
    try:
        return secret.resolve().reveal()
    except ConfigError as exc:  # its message names the reference, never the value
        raise PermanentDeliveryError(f"{what}: {exc}") from None
