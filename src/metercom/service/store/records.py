"""What goes into the store and what comes out: plain frozen records, and the store's errors.

Rule: the store API speaks in these records and in :class:`~metercom.model.reading.Reading`;
no SQLAlchemy row ever leaves the store. All times are timezone-aware UTC.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from metercom.errors import InputError, StoreError
from metercom.model.obis import Obis
from metercom.model.reading import ReadingValue
from metercom.service.store.types import utc

__all__ = [
    "AuditEntry",
    "CommandNotFoundError",
    "CommandRecord",
    "CommandState",
    "CommandStateError",
    "ConfigVersion",
    "ConfigVersionConflict",
    "IntegrityReport",
    "Marker",
    "MeterEvent",
    "MeterRecord",
    "OutboxBacklog",
    "OutboxBatch",
    "OutboxItem",
    "ProfileRow",
    "ReceiveResult",
    "ReceivedReading",
    "RetentionResult",
    "StoredEvent",
    "StoredMeter",
    "StoredProfileRow",
    "StoredReading",
    "WriteResult",
    "obis_key",
    "object_key",
]

JsonMapping = Mapping[str, Any]


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


def object_key(obj: Obis | str) -> str:
    """The text a store writes for an object: the canonical OBIS form (``1-0:1.8.0*255``) of an
    :class:`Obis` or of text in any form :meth:`Obis.parse` reads (``1.8.0``, ``1.0.1.8.0.255``,
    ``0100010800FF`` ...); other text, the address of a reading whose meter used no OBIS code,
    as given."""
    if isinstance(obj, Obis):
        return str(obj)
    if not isinstance(obj, str):
        raise InputError(f"an object is an Obis or its text, got {type(obj).__name__} {obj!r}")
    try:
        return str(Obis.parse(obj))
    except InputError:
        return obj


def obis_key(obj: Obis | str, what: str = "OBIS code") -> str:
    """The canonical OBIS text a query matches for ``obj`` (an :class:`Obis`, or text in any form
    :meth:`Obis.parse` reads), so ``1.8.0`` finds what was stored as ``1-0:1.8.0*255``.
    Anything else raises :class:`InputError` naming ``what`` (a query for a typo must not
    quietly find nothing)."""
    if isinstance(obj, Obis):
        return str(obj)
    if not isinstance(obj, str):
        raise InputError(f"{what} must be an Obis or its text, got {type(obj).__name__} {obj!r}")
    try:
        return str(Obis.parse(obj))
    except InputError as exc:
        raise InputError(f"{what}: {exc}") from None


class CommandNotFoundError(StoreError):
    """No command with that id."""


class CommandStateError(StoreError):
    """A command is not in the state a transition needs (it already ran, or is running)."""

    def __init__(self, message: str, *, state: str | None = None) -> None:
        self.state = state
        super().__init__(message)


class ConfigVersionConflict(StoreError):
    """Another configuration version was applied in the meantime (``expect_version`` failed)."""


@dataclass(frozen=True, slots=True)
class Marker:
    """Collection progress: everything of ``object`` up to ``last_collected`` is stored.

    ``object`` is a register, profile or event log: an :class:`Obis` or its text in any form
    (stored canonical, see :func:`object_key`), or the address of readings without an OBIS
    code. Markers only move forward, and a marker can never be ahead of the newest stored row
    of its object (the store refuses such a write).
    """

    object: Obis | str
    last_collected: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "last_collected", utc(self.last_collected, "marker time"))

    @property
    def key(self) -> str:
        """The object as the store writes it."""
        return object_key(self.object)


@dataclass(frozen=True, slots=True)
class WriteResult:
    """How an idempotent write went: rows inserted, changed (and audited), already equal."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0

    def __add__(self, other: WriteResult) -> WriteResult:
        return WriteResult(
            self.inserted + other.inserted, self.updated + other.updated, self.unchanged + other.unchanged
        )

    @property
    def total(self) -> int:
        return self.inserted + self.updated + self.unchanged


@dataclass(frozen=True, slots=True)
class StoredReading:
    meter_id: str
    obis: str
    capture_time: datetime
    value: ReadingValue
    unit: str | None
    status: str
    received_at: datetime
    #: How many times the stored value was corrected (0: as first written).
    revision: int = 0


@dataclass(frozen=True, slots=True)
class ProfileRow:
    """One row of a load profile (or any captured buffer): values by column (OBIS text)."""

    capture_time: datetime
    values: Mapping[str, ReadingValue]
    status: str = "ok"
    units: Mapping[str, str] = field(default_factory=_empty)


@dataclass(frozen=True, slots=True)
class StoredProfileRow:
    meter_id: str
    profile: str
    capture_time: datetime
    values: Mapping[str, ReadingValue]
    units: Mapping[str, str]
    status: str
    received_at: datetime
    revision: int = 0


@dataclass(frozen=True, slots=True)
class MeterEvent:
    """An entry of a meter's event log, with the meter's own time."""

    time: datetime
    code: int
    log: str
    description: str = ""
    data: JsonMapping = field(default_factory=_empty)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    id: int
    meter_id: str
    log: str
    time: datetime
    code: int
    description: str
    data: JsonMapping
    received_at: datetime


@dataclass(frozen=True, slots=True)
class MeterRecord:
    """A meter as the configuration defines it (what the store keeps of it; no secrets)."""

    id: str
    protocol: str
    line_id: str
    address: str
    device_profile: str | None = None
    tariff: str | None = None


@dataclass(frozen=True, slots=True)
class StoredMeter:
    id: str
    protocol: str
    line_id: str
    address: str
    device_profile: str | None
    tariff: str | None
    active: bool
    #: Configuration version that first defined it, and the last one that changed it.
    first_version: int
    changed_version: int
    updated_at: datetime


class CommandState(enum.StrEnum):
    REQUESTED = "requested"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (CommandState.SUCCEEDED, CommandState.FAILED)


@dataclass(frozen=True, slots=True)
class CommandRecord:
    id: str
    kind: str
    meter_id: str | None
    args: JsonMapping
    requested_by: str
    requested_at: datetime
    idempotency_key: str | None
    state: CommandState
    started_at: datetime | None = None
    finished_at: datetime | None = None
    result: JsonMapping | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    subject: str
    result: str
    detail: JsonMapping | None


@dataclass(frozen=True, slots=True)
class ConfigVersion:
    version: int
    applied_at: datetime
    actor: str
    source: str
    sha256: str
    summary: str
    #: The whole configuration text (``None`` in history listings).
    text: str | None = None


@dataclass(frozen=True, slots=True)
class RetentionResult:
    """Rows deleted by a retention run, per table."""

    readings: int = 0
    profile_rows: int = 0
    events: int = 0
    audit_log: int = 0

    @property
    def total(self) -> int:
        return self.readings + self.profile_rows + self.events + self.audit_log


@dataclass(frozen=True, slots=True)
class IntegrityReport:
    """The outcome of :meth:`Store.check_integrity`: the checks run and the problems found."""

    checks: tuple[str, ...]
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_if_failed(self) -> None:
        if self.problems:
            raise StoreError(
                f"store integrity check found {len(self.problems)} problem(s): "
                + "; ".join(self.problems[:10])
            )


# -- forwarding (outbox) ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One reading value waiting to be forwarded: a snapshot taken when it was stored.

    ``seq`` orders the outbox (append order). ``value_kind``/``value_text`` are the store's exact
    encoding of ``value`` (see :mod:`metercom.service.store.types`), which is what goes on the wire.
    """

    seq: int
    meter_id: str
    obis: str
    capture_time: datetime
    value: ReadingValue
    value_kind: str
    value_text: str | None
    unit: str | None
    status: str
    revision: int
    enqueued_at: datetime


@dataclass(frozen=True, slots=True)
class OutboxBatch:
    """Outbox items claimed for one sink under a stable ``batch_id``.

    Until the sink confirms it, claiming again returns the same batch (same id, same items):
    a resend after a lost confirmation or a restart carries the id the receiver already knows.
    ``resend`` is true when the batch was claimed before (its confirmation never arrived).
    """

    sink: str
    batch_id: str
    items: tuple[OutboxItem, ...]
    resend: bool = False

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True, slots=True)
class OutboxBacklog:
    """What one sink still has to send: the backlog metrics of the forwarder."""

    sink: str
    #: Entries not yet confirmed (including those of the open batch).
    pending: int
    #: Entries of the batch sent but not yet confirmed.
    in_flight: int
    #: When the oldest pending entry was stored (``None``: nothing pending).
    oldest_enqueued_at: datetime | None
    confirmed_total: int
    #: Entries dropped unsent because they were older than the retention of unsent data.
    expired_total: int
    last_confirmed_at: datetime | None

    def age_s(self, now: datetime) -> float:
        """Seconds since the oldest pending entry was stored (0 when nothing is pending)."""
        if self.oldest_enqueued_at is None:
            return 0.0
        return max(0.0, (now - self.oldest_enqueued_at).total_seconds())


@dataclass(frozen=True, slots=True)
class ReceivedReading:
    """A reading as a central receiver gets it from a forwarded batch."""

    meter_id: str
    obis: str
    capture_time: datetime
    value: ReadingValue
    unit: str | None = None
    status: str = "ok"


@dataclass(frozen=True, slots=True)
class ReceiveResult:
    """How storing a received batch went: ``duplicate`` when its id was stored before (then
    nothing was written and ``result`` is empty)."""

    batch_id: str
    duplicate: bool
    result: WriteResult
