"""Local-time windows: protected periods (no cut-offs) and the daily windows time-of-use prices use.

Rule: a window is written in the local wall time of a named zone (``18:00-08:00`` in
``Asia/Kolkata``) and is turned into concrete instants once per local date; every comparison is
then made between UTC instants, never between wall times. That makes the daylight-saving days
well defined:

* a wall time that does not exist (the hour skipped in spring) takes effect at the first
  instant whose wall time is at or after it, i.e. at the transition itself;
* a wall time that occurs twice (the hour repeated in autumn) takes effect at its first
  occurrence.

So the night ``22:00-06:00`` before the spring change in Europe/Berlin lasts seven real hours
and the one before the autumn change nine.

Theory of operation: :class:`DailyWindow` yields one interval ``[start, end)`` per local
*anchor* date (the day the window starts; a window whose end is not after its start runs past
midnight into the next day, and ``start == end`` means the whole day). :class:`ProtectedWindows`
combines daily windows, protected weekdays (Sunday) and holiday dates (whole local days) and
answers three questions: is an instant protected (:meth:`ProtectedWindows.is_protected`), why
(:meth:`ProtectedWindows.why`), and when does the protected stretch that contains it end
(:meth:`ProtectedWindows.protected_until`; overlapping and touching windows are merged, so a
Saturday night, a Sunday and the Sunday night give one stretch ending Monday 08:00).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Final

from metercom.errors import ConfigError, PrepaidError

__all__ = ["ALL_DAYS", "DailyWindow", "ProtectedWindows", "local_instant"]

#: Every weekday, Monday = 0 ... Sunday = 6 (``date.weekday()``).
ALL_DAYS: Final = frozenset(range(7))
_DAY_NAMES: Final = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
#: protected_until gives up after this many merged intervals (a year of nights and Sundays is ~420).
_MAX_STEPS: Final = 2000


def _aware(at: datetime, what: str) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise PrepaidError(f"{what} must be timezone-aware, got {at!r}")
    return at.astimezone(UTC)


def local_instant(day: date, wall: time, zone: tzinfo) -> datetime:
    """The UTC instant at which the local wall time ``wall`` of ``day`` begins in ``zone``.

    A wall time skipped by a daylight-saving change maps to the transition (the first instant
    whose wall time is at or after it); a repeated wall time maps to its first occurrence.
    """
    naive = datetime.combine(day, wall.replace(tzinfo=None, fold=0))
    first = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == naive:
        other = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
        return min(first, other)
    # In a gap: fold=1 reads the wall time with the later offset and lands before the
    # transition; search between the two readings for the first instant at or after ``naive``.
    lo = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    hi = first
    if lo > hi:
        lo, hi = hi, lo
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        mid = mid.replace(microsecond=0)
        if mid <= lo:
            break
        if mid.astimezone(zone).replace(tzinfo=None) >= naive:
            hi = mid
        else:
            lo = mid
    return hi


def _local_date(at: datetime, zone: tzinfo) -> date:
    return at.astimezone(zone).date()


@dataclass(frozen=True, slots=True)
class DailyWindow:
    """A window of local wall time repeated every day (or on ``weekdays`` only).

    ``end`` not after ``start`` means the window runs past midnight (``18:00-08:00``);
    ``start == end`` means the whole day. ``weekdays`` selects the days a window *starts* on
    (Monday = 0), so a Friday-only ``22:00-06:00`` covers Friday night into Saturday morning.
    """

    start: time
    end: time
    weekdays: frozenset[int] = ALL_DAYS
    name: str = ""

    def __post_init__(self) -> None:
        for t in (self.start, self.end):
            if t.tzinfo is not None:
                raise ConfigError(f"window edge {t} must be a local wall time without a zone", where="window")
        if not self.weekdays or not self.weekdays <= ALL_DAYS:
            raise ConfigError(f"weekdays must be a non-empty subset of 0..6, got {sorted(self.weekdays)}")

    @property
    def wraps(self) -> bool:
        """True when the window ends on the day after it starts."""
        return self.end <= self.start

    def label(self) -> str:
        """``night 18:00-08:00`` style text for reasons and messages."""
        span = f"{self.start:%H:%M}-{self.end:%H:%M}"
        return f"{self.name} {span}" if self.name else span

    def interval(self, anchor: date, zone: tzinfo) -> tuple[datetime, datetime] | None:
        """The window starting on local date ``anchor`` as UTC instants, or None if it does not run then."""
        if anchor.weekday() not in self.weekdays:
            return None
        start = local_instant(anchor, self.start, zone)
        end_day = anchor + timedelta(days=1) if self.wraps else anchor
        end = local_instant(end_day, self.end, zone)
        return (start, end) if end > start else None

    def intervals_around(self, at: datetime, zone: tzinfo) -> Iterator[tuple[datetime, datetime]]:
        """The occurrences that may contain or follow ``at`` (anchored the day before to the day after)."""
        day = _local_date(at, zone)
        for offset in (-1, 0, 1):
            found = self.interval(day + timedelta(days=offset), zone)
            if found is not None:
                yield found


def _day_interval(day: date, zone: tzinfo) -> tuple[datetime, datetime]:
    return local_instant(day, time(0), zone), local_instant(day + timedelta(days=1), time(0), zone)


@dataclass(frozen=True)
class ProtectedWindows:
    """When the supply must not be cut: daily windows, weekdays and holidays, in ``zone``.

    ``holidays`` maps local dates to names (``{date(2026, 3, 4): "Holi"}``); a holiday and a
    protected weekday cover the whole local day. With nothing configured nothing is protected.
    """

    zone: tzinfo = UTC
    daily: tuple[DailyWindow, ...] = ()
    weekdays: frozenset[int] = frozenset()
    holidays: Mapping[date, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.weekdays <= ALL_DAYS:
            raise ConfigError(f"protected weekdays must be within 0..6, got {sorted(self.weekdays)}")
        object.__setattr__(self, "daily", tuple(self.daily))
        object.__setattr__(self, "holidays", dict(self.holidays))

    @classmethod
    def indian_practice(
        cls, zone: tzinfo, holidays: Mapping[date, str] | Iterable[date] = ()
    ) -> ProtectedWindows:
        """No cut-offs 18:00-08:00, on Sundays or on ``holidays`` (field notes, Indian prepaid practice)."""
        named = dict(holidays) if isinstance(holidays, Mapping) else dict.fromkeys(holidays, "holiday")
        return cls(
            zone=zone,
            daily=(DailyWindow(time(18), time(8), name="night"),),
            weekdays=frozenset({6}),
            holidays=named,
        )

    def _covering(self, at: datetime) -> list[tuple[datetime, str]]:
        """(end, reason) of every protected interval that contains ``at``."""
        found: list[tuple[datetime, str]] = []
        for window in self.daily:
            for start, end in window.intervals_around(at, self.zone):
                if start <= at < end:
                    found.append((end, window.label()))
        if self.weekdays or self.holidays:
            day = _local_date(at, self.zone)
            for offset in (-1, 0, 1):
                d = day + timedelta(days=offset)
                names: list[str] = []
                if d.weekday() in self.weekdays:
                    names.append(_DAY_NAMES[d.weekday()])
                if d in self.holidays:
                    names.append(f"holiday {d.isoformat()} ({self.holidays[d]})")
                if names:
                    start, end = _day_interval(d, self.zone)
                    if start <= at < end:
                        found.extend((end, name) for name in names)
        return found

    def is_protected(self, at: datetime) -> bool:
        """True when no disconnection may happen at ``at``."""
        return bool(self._covering(_aware(at, "at")))

    def why(self, at: datetime) -> str | None:
        """Why ``at`` is protected (``"night 18:00-08:00, Sunday"``), or None when it is not."""
        covering = self._covering(_aware(at, "at"))
        return ", ".join(dict.fromkeys(reason for _, reason in covering)) if covering else None

    def protected_until(self, at: datetime) -> datetime | None:
        """The end (UTC) of the protected stretch containing ``at``; None when ``at`` is not protected.

        Overlapping and touching windows are merged. Raises :class:`~metercom.errors.PrepaidError`
        when the stretch does not end within a long horizon (everything configured as protected).
        """
        t = _aware(at, "at")
        covering = self._covering(t)
        if not covering:
            return None
        for _ in range(_MAX_STEPS):
            t = max(end for end, _ in covering)
            covering = self._covering(t)
            if not covering:
                return t
        raise PrepaidError(f"the protected windows starting at {at.isoformat()} never end; check the policy")
