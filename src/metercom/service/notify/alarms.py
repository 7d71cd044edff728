"""Alarms, their lifecycle records, the notifications sent about them, and routing rules.

Rule: an :class:`Alarm` is an immutable report of something that happened (a meter event, a
rule that fired, a prepaid level, a lost route); the :class:`AlarmRecord` is the alarm centre's
view of one *episode* of it (first and last occurrence, count, acknowledged, cleared); a
:class:`Notification` is one message about a record (raised, repeated, cleared) that the
channels deliver. Alarms with the same ``dedup_key`` are the same episode until it is cleared.

Times are timezone-aware; ``details`` hold JSON scalars only, so every channel can carry them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final

from metercom.errors import ConfigError, NotifyError

__all__ = [
    "DEFAULT_SEVERITY",
    "Alarm",
    "AlarmKind",
    "AlarmRecord",
    "AlarmState",
    "DeliveryRecord",
    "DeliveryStatus",
    "JsonScalar",
    "Notification",
    "NotificationEvent",
    "Route",
    "Severity",
]

JsonScalar = str | int | float | bool | None


class AlarmKind(enum.StrEnum):
    """What an alarm is about."""

    POWER_FAILURE = "power_failure"
    TAMPER = "tamper"
    COVER_OPEN = "cover_open"
    RULE = "rule"
    BROKEN_NEUTRAL = "broken_neutral"
    PREPAID_LEVEL = "prepaid_level"
    PREPAID_DISCONNECT = "prepaid_disconnect"
    COMM_LOSS = "comm_loss"
    COMM_RESTORED = "comm_restored"
    AUTH_FAILURE = "auth_failure"


class Severity(enum.IntEnum):
    """How bad; ordered, so routes can say "major and worse"."""

    INFO = 10
    WARNING = 20
    MAJOR = 30
    CRITICAL = 40

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(s.label for s in cls)
            raise ConfigError(f"unknown severity {text!r}; expected one of {names}") from None


#: Severity used by :meth:`Alarm.of` when none is given.
DEFAULT_SEVERITY: Final[Mapping[AlarmKind, Severity]] = MappingProxyType(
    {
        AlarmKind.POWER_FAILURE: Severity.MAJOR,
        AlarmKind.TAMPER: Severity.CRITICAL,
        AlarmKind.COVER_OPEN: Severity.CRITICAL,
        AlarmKind.RULE: Severity.WARNING,
        AlarmKind.BROKEN_NEUTRAL: Severity.CRITICAL,
        AlarmKind.PREPAID_LEVEL: Severity.INFO,
        AlarmKind.PREPAID_DISCONNECT: Severity.WARNING,
        AlarmKind.COMM_LOSS: Severity.MAJOR,
        AlarmKind.COMM_RESTORED: Severity.INFO,
        AlarmKind.AUTH_FAILURE: Severity.MAJOR,
    }
)


def _aware(at: datetime, what: str) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise NotifyError(f"{what} must be timezone-aware, got {at!r}")
    return at


@dataclass(frozen=True, slots=True)
class Alarm:
    """Something happened at ``at`` on ``meter_id`` (None: the head-end itself).

    ``dedup_key`` identifies the episode; :meth:`of` defaults it to ``kind:meter_id``. Give
    rules their own key (``rule:<name>:<meter>``) so different rules are not merged.
    """

    kind: AlarmKind
    meter_id: str | None
    at: datetime
    severity: Severity
    message: str
    details: Mapping[str, JsonScalar]
    dedup_key: str

    def __post_init__(self) -> None:
        _aware(self.at, "alarm time")
        if not self.dedup_key:
            raise NotifyError("an alarm needs a dedup_key (Alarm.of builds one)")
        for name, value in self.details.items():
            if not isinstance(value, str | int | float | bool | type(None)):
                raise NotifyError(f"alarm detail {name!r} must be a JSON scalar, not {type(value).__name__}")
        object.__setattr__(self, "details", MappingProxyType(dict(self.details)))

    @classmethod
    def of(
        cls,
        kind: AlarmKind,
        meter_id: str | None,
        at: datetime,
        message: str = "",
        *,
        severity: Severity | None = None,
        details: Mapping[str, JsonScalar] | None = None,
        dedup_key: str | None = None,
    ) -> Alarm:
        """An alarm with the kind's default severity, message and ``kind:meter`` dedup key."""
        return cls(
            kind=kind,
            meter_id=meter_id,
            at=at,
            severity=severity if severity is not None else DEFAULT_SEVERITY.get(kind, Severity.WARNING),
            message=message or kind.value.replace("_", " "),
            details=details or {},
            dedup_key=dedup_key or f"{kind.value}:{meter_id or '-'}",
        )


class AlarmState(enum.StrEnum):
    """Where an alarm episode stands."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    CLEARED = "cleared"


class NotificationEvent(enum.StrEnum):
    """Why a notification is sent."""

    RAISED = "raised"
    REPEATED = "repeated"
    CLEARED = "cleared"


class DeliveryStatus(enum.StrEnum):
    """Where one notification stands on one channel."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    DROPPED = "dropped"


@dataclass(slots=True)
class DeliveryRecord:
    """One notification on one channel: attempts, outcome, last error (never a secret)."""

    delivery_id: str
    channel: str
    notification_id: str
    alarm_id: str
    event: NotificationEvent
    created_at: datetime
    status: DeliveryStatus = DeliveryStatus.PENDING
    attempts: int = 0
    last_error: str | None = None
    delivered_at: datetime | None = None


@dataclass(slots=True)
class AlarmRecord:
    """The alarm centre's state of one episode. Owned by the centre: read, do not modify."""

    alarm_id: str
    first: Alarm
    last: Alarm
    count: int = 1
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    acknowledge_note: str = ""
    cleared_at: datetime | None = None
    clear_reason: str = ""
    notifications: int = 0
    last_notified_at: datetime | None = None
    deliveries: list[DeliveryRecord] = field(default_factory=list)

    @property
    def kind(self) -> AlarmKind:
        return self.first.kind

    @property
    def meter_id(self) -> str | None:
        return self.first.meter_id

    @property
    def dedup_key(self) -> str:
        return self.first.dedup_key

    @property
    def severity(self) -> Severity:
        return max(self.first.severity, self.last.severity)

    @property
    def first_at(self) -> datetime:
        return self.first.at

    @property
    def last_at(self) -> datetime:
        return self.last.at

    @property
    def state(self) -> AlarmState:
        if self.cleared_at is not None:
            return AlarmState.CLEARED
        if self.acknowledged_at is not None:
            return AlarmState.ACKNOWLEDGED
        return AlarmState.OPEN

    @property
    def active(self) -> bool:
        """Not cleared."""
        return self.cleared_at is None


@dataclass(frozen=True, slots=True)
class Notification:
    """One message about an alarm record, as every channel sends it.

    ``notification_id`` is stable across retries, so receivers can drop repeats.
    """

    notification_id: str
    event: NotificationEvent
    alarm_id: str
    kind: AlarmKind
    meter_id: str | None
    severity: Severity
    message: str
    details: Mapping[str, JsonScalar]
    at: datetime
    first_at: datetime
    count: int
    state: AlarmState
    dedup_key: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON body of a webhook."""
        return {
            "notification_id": self.notification_id,
            "event": self.event.value,
            "alarm_id": self.alarm_id,
            "kind": self.kind.value,
            "meter_id": self.meter_id,
            "severity": self.severity.label,
            "message": self.message,
            "details": dict(self.details),
            "at": self.at.isoformat(),
            "first_at": self.first_at.isoformat(),
            "count": self.count,
            "state": self.state.value,
            "dedup_key": self.dedup_key,
        }

    def subject(self) -> str:
        """One line: ``CRITICAL tamper on meter M1: cover opened``."""
        tag = "CLEARED" if self.event is NotificationEvent.CLEARED else self.severity.label.upper()
        where = f" on meter {self.meter_id}" if self.meter_id else ""
        repeat = f" (x{self.count})" if self.count > 1 else ""
        return f"{tag} {self.kind.value}{where}: {self.message}{repeat}"

    def text(self) -> str:
        """A plain-text body for people."""
        lines = [
            self.subject(),
            "",
            f"event:     {self.event.value}",
            f"alarm:     {self.alarm_id}",
            f"kind:      {self.kind.value}",
            f"meter:     {self.meter_id or '-'}",
            f"severity:  {self.severity.label}",
            f"state:     {self.state.value}",
            f"at:        {self.at.isoformat()}",
            f"first at:  {self.first_at.isoformat()}",
            f"count:     {self.count}",
        ]
        lines.extend(f"{name}: {value}" for name, value in sorted(self.details.items()))
        return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class Route:
    """Send notifications that match to ``channels``.

    A route matches when the alarm's kind is in ``kinds`` (None: any), its severity is at least
    ``min_severity``, its meter is in ``meters`` (None: any) and the notification's event is in
    ``events``. A notification goes to the union of the channels of every matching route.
    """

    channels: tuple[str, ...]
    kinds: frozenset[AlarmKind] | None = None
    min_severity: Severity = Severity.INFO
    meters: frozenset[str] | None = None
    events: frozenset[NotificationEvent] = frozenset(NotificationEvent)

    def __post_init__(self) -> None:
        if not self.channels:
            raise ConfigError("a route needs at least one channel")

    def matches(
        self, kinds: frozenset[AlarmKind], severity: Severity, meter_id: str | None, event: NotificationEvent
    ) -> bool:
        """True when this route takes a notification (``kinds``: the record's kind and the notification's)."""
        if self.kinds is not None and not (self.kinds & kinds):
            return False
        if severity < self.min_severity or event not in self.events:
            return False
        return self.meters is None or (meter_id is not None and meter_id in self.meters)
