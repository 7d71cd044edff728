"""What a sink is, and the schedule the forwarder runs each sink on.

Rule: :meth:`Sink.send` returns only when the central system has confirmed the batch at the
highest level the sink offers (the batch id echoed back by the receiver for HTTP and MQTT; the
JetStream PubAck, which means the stream stored it, for NATS). Anything less, including a
broker's acknowledgement of a publish, raises :class:`~metercom.errors.UploadError`, and the
forwarder sends the same batch (same id) again later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol, runtime_checkable

from metercom.errors import ConfigError, InputError, UploadError
from metercom.service.secrets import Secret, SecretRef
from metercom.service.store import OutboxBatch

__all__ = ["ForwardPolicy", "Sink", "Upstream", "resolve_secret_text"]


@runtime_checkable
class Sink(Protocol):
    """An upstream destination of batches."""

    @property
    def name(self) -> str:
        """The sink's name: its outbox key in the store (keep it stable across restarts)."""
        ...

    async def send(self, batch: OutboxBatch) -> None:
        """Deliver ``batch`` and return once it is confirmed; raise ``UploadError`` otherwise."""
        ...

    async def close(self) -> None:
        """Release connections; the sink may be used again afterwards (it reconnects)."""
        ...


@dataclass(frozen=True, slots=True)
class ForwardPolicy:
    """How the forwarder feeds one sink.

    ``batch_size`` readings per batch; ``interval_s`` between looks at an empty outbox (a
    :meth:`~metercom.service.forward.Forwarder.wake` looks at once); ``max_rate_per_s`` bounds
    readings sent per second (``None``: unbounded), so draining a backlog after an outage
    cannot swamp the central system or the uplink; ``live_share`` of each batch is taken from
    the newest pending readings so live data is not starved while a backlog drains;
    ``confirm_timeout_s`` bounds one send including its confirmation; failed sends are retried
    with exponential backoff from ``retry_min_s`` to ``retry_max_s`` (with jitter).
    """

    batch_size: int = 500
    interval_s: float = 10.0
    max_rate_per_s: float | None = None
    live_share: float = 0.2
    confirm_timeout_s: float = 30.0
    retry_min_s: float = 1.0
    retry_max_s: float = 300.0

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= 50_000:
            raise InputError(f"batch_size must be 1..50000, got {self.batch_size}")
        if self.interval_s <= 0 or self.confirm_timeout_s <= 0:
            raise InputError("interval_s and confirm_timeout_s must be positive")
        if self.max_rate_per_s is not None and self.max_rate_per_s <= 0:
            raise InputError("max_rate_per_s must be positive (or None for unbounded)")
        if not 0.0 <= self.live_share < 1.0:
            raise InputError(f"live_share must be in [0, 1), got {self.live_share}")
        if not 0 < self.retry_min_s <= self.retry_max_s:
            raise InputError("retry backoff needs 0 < retry_min_s <= retry_max_s")


@dataclass(frozen=True, slots=True)
class Upstream:
    """A sink, the policy it is fed with, and how long its unconfirmed readings are kept
    (``None``: the forwarder's ``keep_unsent``, by default 90 days)."""

    sink: Sink
    policy: ForwardPolicy = ForwardPolicy()
    keep_unsent: timedelta | None = None

    def __post_init__(self) -> None:
        if self.keep_unsent is not None and self.keep_unsent <= timedelta(0):
            raise InputError("keep_unsent must be positive")


def resolve_secret_text(secret: SecretRef | Secret, what: str) -> str:
    """The secret's text (a reference is resolved now); failures name the reference only."""
    if isinstance(secret, Secret):
        return secret.reveal()
    try:
        return secret.resolve().reveal()
    except ConfigError as exc:  # the message names the reference, never the value
        raise UploadError(f"{what}: {exc}") from None
