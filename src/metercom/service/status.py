"""Per-meter and per-line status of the head-end, as plain data for ``metercom status`` and the API.

Rule: status is observation only. The collector and the scheduler update it as things happen;
nothing reads it to decide anything except :attr:`MeterStatus.quarantined`, which the collector
itself owns. :meth:`StatusBoard.snapshot` hands out copies, so a caller can never change the
live records. Times are timezone-aware UTC.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import datetime

__all__ = ["LineStatus", "MeterStatus", "StatusBoard"]


@dataclass(slots=True)
class MeterStatus:
    """What the head-end knows about one meter's collection."""

    meter_id: str
    line_id: str = ""
    protocol: str = ""
    enabled: bool = True
    #: False from the moment the meter went unavailable (retries exhausted, quarantine) until it
    #: answers again; the availability listener is told once at each change.
    available: bool = True
    #: The last successful read (head-end time).
    last_read_at: datetime | None = None
    #: The last conversation attempt, successful or not.
    last_attempt_at: datetime | None = None
    #: The next scheduled read, or a pending retry if sooner.
    next_read_at: datetime | None = None
    last_error: str | None = None
    #: The error's class name (``TransportTimeout``, ``AuthenticationError`` ...).
    last_error_class: str | None = None
    last_error_at: datetime | None = None
    #: Failed attempts since the last success.
    consecutive_failures: int = 0
    quarantined: bool = False
    quarantine_reason: str | None = None
    #: When a quarantine ends on its own (``None`` with ``quarantined``: until released).
    quarantined_until: datetime | None = None
    reads_ok: int = 0
    reads_failed: int = 0
    #: Scheduled reads not started: the previous one was still retrying, or the meter was quarantined.
    missed: int = 0
    #: Plan items the meter did not deliver in its last read.
    missing: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, datetime):
                out[key] = value.isoformat()
            elif isinstance(value, tuple):
                out[key] = list(value)
        return out


@dataclass(frozen=True, slots=True)
class LineStatus:
    """One line's traffic: what runs and waits now, and the most that ever ran at once."""

    line_id: str
    kind: str
    max_conversations: int
    running: int
    queued: int
    peak_running: int
    conversations: int

    def to_json(self) -> dict[str, object]:
        return asdict(self)


class StatusBoard:
    """The live :class:`MeterStatus` records, by meter id."""

    def __init__(self) -> None:
        self._meters: dict[str, MeterStatus] = {}

    def get(self, meter_id: str) -> MeterStatus:
        """The live record (created on first use)."""
        status = self._meters.get(meter_id)
        if status is None:
            status = self._meters[meter_id] = MeterStatus(meter_id)
        return status

    def remove(self, meter_id: str) -> None:
        self._meters.pop(meter_id, None)

    def __contains__(self, meter_id: object) -> bool:
        return meter_id in self._meters

    def snapshot(self) -> list[MeterStatus]:
        """Copies of every record, by meter id."""
        return [replace(self._meters[key]) for key in sorted(self._meters)]
