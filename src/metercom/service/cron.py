"""Schedule times: a small, bounded cron parser, interval triggers and durations.

Cron expressions have the five classic fields, in a time zone's local wall time::

    minute 0-59   hour 0-23   day-of-month 1-31   month 1-12 or jan-dec   day-of-week 0-7 or sun-sat

Each field is ``*`` or a comma list of items ``N``, ``A-B``, ``*/S``, ``A-B/S`` or ``A/S``
(``A`` through the field's maximum); names are three letters, case-insensitive, also in ranges
(``mon-fri``); 0 and 7 are both Sunday. ``@yearly`` (``@annually``), ``@monthly``,
``@weekly``, ``@daily`` (``@midnight``) and ``@hourly`` stand for their usual expansions.
As in Vixie cron, when both day fields are restricted (neither starts with ``*``) a day matches
if *either* matches; otherwise both must. Parsing is bounded: the text is at most 200
characters and a field at most 64 items, and an expression that can never fire (``0 0 31 2 *``)
is refused.

Daylight saving time. Cron times are wall times, and wall times around a DST change do not
map one to one onto real instants. The rule follows Vixie cron, so every job runs as its
author expects:

* An expression whose hour field starts with ``*`` (``*/15 * * * *``, ``0 */2 * * *``)
  follows real time: wall times skipped by a spring-forward change do not fire, and wall times
  repeated by a fall-back change fire in both occurrences.
* Any other expression names fixed hours: a wall time skipped by a spring-forward change fires
  once at the end of the gap (``30 2 * * *`` fires at 03:00 on the day clocks go from 02:00 to
  03:00, so a daily read is not lost), and a repeated wall time fires only at its first
  occurrence (no double daily read on the day clocks go back).

:meth:`CronExpr.next_fire` finds the first fire time strictly after an instant by walking local
days (skipping months that cannot match), so it costs microseconds, not a minute-by-minute scan;
the tests check it against exactly such a scan. Fire times are returned in UTC. Intervals
(:class:`IntervalTrigger`) are real elapsed time aligned to the Unix epoch plus an offset; use
cron for wall-clock times.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Final, Protocol

from metercom.errors import InputError

__all__ = ["CronExpr", "CronTrigger", "IntervalTrigger", "Trigger", "format_duration", "parse_duration"]

MAX_CRON_LENGTH: Final = 200
MAX_FIELD_ITEMS: Final = 64
#: How far ahead next_fire looks. A leap day that must also be a given month/day set fires at
#: least every 8 years (2096 -> 2104 skips 2100); the parser refuses what never fires.
_HORIZON_DAYS: Final = 12 * 366

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # February with its leap day

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


@dataclass(frozen=True, slots=True)
class _FieldSpec:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    #: The value ``names[0]`` stands for.
    name_base: int = 0


_FIELDS = (
    _FieldSpec("minute", 0, 59),
    _FieldSpec("hour", 0, 23),
    _FieldSpec("day of month", 1, 31),
    _FieldSpec("month", 1, 12, _MONTHS, 1),
    _FieldSpec("day of week", 0, 7, _DAYS, 0),
)
_ITEM = re.compile(
    r"^(?:(?P<star>\*)|(?P<a>[0-9]{1,2}|[a-z]{3})(?:-(?P<b>[0-9]{1,2}|[a-z]{3}))?)(?:/(?P<s>[0-9]{1,2}))?$"
)


def _value(spec: _FieldSpec, token: str, expr: str) -> int:
    if token.isdigit():
        value = int(token)
    elif token in spec.names:
        value = spec.names.index(token) + spec.name_base
    else:
        hint = f" (names: {', '.join(spec.names)})" if spec.names else ""
        raise InputError(f"cron {expr!r}: {spec.name} {token!r} is not a number{hint}")
    if not spec.low <= value <= spec.high:
        raise InputError(f"cron {expr!r}: {spec.name} {value} is out of range {spec.low}-{spec.high}")
    return value


def _parse_field(spec: _FieldSpec, text: str, expr: str) -> frozenset[int]:
    items = text.lower().split(",")
    if len(items) > MAX_FIELD_ITEMS:
        raise InputError(f"cron {expr!r}: the {spec.name} field has more than {MAX_FIELD_ITEMS} items")
    values: set[int] = set()
    for item in items:
        m = _ITEM.match(item)
        if m is None:
            raise InputError(
                f"cron {expr!r}: cannot read {item!r} in the {spec.name} field "
                "(expected *, N, A-B, */S, A-B/S or a comma list of them)"
            )
        if m["star"]:
            low, high = spec.low, spec.high
        else:
            low = _value(spec, m["a"], expr)
            high = _value(spec, m["b"], expr) if m["b"] else (spec.high if m["s"] else low)
            if low > high:
                raise InputError(
                    f"cron {expr!r}: the {spec.name} range {item!r} runs backwards "
                    "(ranges do not wrap; write it as two items, "
                    f"e.g. {m['a']}-{spec.high},{spec.low}-{m['b']})"
                )
        step = int(m["s"]) if m["s"] else 1
        if not 1 <= step <= spec.high - spec.low + 1:
            raise InputError(
                f"cron {expr!r}: step {step} in the {spec.name} field must be 1..{spec.high - spec.low + 1}"
            )
        values.update(range(low, high + 1, step))
    return frozenset(values)


@dataclass(frozen=True, slots=True)
class CronExpr:
    """A parsed cron expression; see the module docstring. Build with :meth:`parse`."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    #: Days of the week, 0 = Sunday .. 6 = Saturday (7 is folded into 0).
    weekdays: frozenset[int]
    #: Whether the day-of-month / day-of-week / hour fields were written starting with ``*``.
    dom_star: bool
    dow_star: bool
    hour_star: bool
    _sorted_minutes: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _sorted_hours: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_sorted_minutes", tuple(sorted(self.minutes)))
        object.__setattr__(self, "_sorted_hours", tuple(sorted(self.hours)))

    @classmethod
    def parse(cls, text: str) -> CronExpr:
        """Parse ``text``; raises :class:`~metercom.errors.InputError` saying what is wrong."""
        if not isinstance(text, str):
            raise InputError(f"a cron expression is text, got {type(text).__name__}")
        if len(text) > MAX_CRON_LENGTH:
            raise InputError(f"a cron expression has at most {MAX_CRON_LENGTH} characters")
        expr = text.strip()
        body = _MACROS.get(expr.lower(), expr)
        if body.startswith("@"):
            raise InputError(f"cron {expr!r}: unknown macro (known: {', '.join(_MACROS)})")
        parts = body.split()
        if len(parts) != 5:
            raise InputError(
                f"cron {expr!r}: expected 5 fields (minute hour day-of-month month day-of-week), "
                f"got {len(parts)}"
            )
        minutes, hours, days, months, weekdays = (
            _parse_field(spec, part, expr) for spec, part in zip(_FIELDS, parts, strict=True)
        )
        weekdays = frozenset(d % 7 for d in weekdays)
        dom_star, dow_star = parts[2].startswith("*"), parts[4].startswith("*")
        if not dom_star and dow_star and not any(d <= _MONTH_DAYS[m - 1] for m in months for d in days):
            raise InputError(
                f"cron {expr!r}: never fires (no day of month in the {parts[2]!r} field exists in "
                f"the months of {parts[3]!r})"
            )
        return cls(expr, minutes, hours, days, months, weekdays, dom_star, dow_star, parts[1].startswith("*"))

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"CronExpr({self.text!r})"

    def day_matches(self, day: date) -> bool:
        """Whether the expression fires at all on the local date ``day``."""
        if day.month not in self.months:
            return False
        dom = day.day in self.days
        dow = day.isoweekday() % 7 in self.weekdays
        if self.dom_star or self.dow_star:
            return dom and dow
        return dom or dow

    def matches(self, wall: datetime) -> bool:
        """Whether the local wall time ``wall`` (its tzinfo is ignored) matches all fields."""
        return wall.minute in self.minutes and wall.hour in self.hours and self.day_matches(wall.date())

    def next_fire(self, after: datetime, tz: tzinfo) -> datetime:
        """The first fire time strictly after ``after`` (timezone-aware), in UTC.

        Wall times are read in ``tz``; DST changes follow the rule of the module docstring.
        The result is UTC because an aware time inside a repeated hour compares unequal to
        every time of another zone (PEP 495); convert with ``.astimezone(tz)`` for display.
        """
        if after.tzinfo is None or after.utcoffset() is None:
            raise InputError("next_fire needs a timezone-aware time")
        after_utc = after.astimezone(UTC)
        # A fall-back change can put wall times of the previous local date after `after`.
        day = after_utc.astimezone(tz).date() - timedelta(days=1)
        end = day + timedelta(days=_HORIZON_DAYS)
        best: datetime | None = None
        best_day: date | None = None
        while day <= end:
            if best_day is not None and day > best_day + timedelta(days=1):
                break
            if day.month not in self.months:
                day = _first_of_next_month(day)
                continue
            if self.day_matches(day):
                fire, simple = self._first_on(day, tz, after_utc)
                if fire is not None and (best is None or fire < best):
                    best = fire
                    if simple and best_day is None:
                        # No DST change touches this day: nothing later can come earlier.
                        return best
                    best_day = best_day or day
            day += timedelta(days=1)
        if best is None:
            raise InputError(f"cron {self.text!r} does not fire within {_HORIZON_DAYS // 366} years")
        return best

    def _first_on(self, day: date, tz: tzinfo, after_utc: datetime) -> tuple[datetime | None, bool]:
        """The earliest fire instant (UTC) on local date ``day`` after ``after_utc``, and whether
        the day has one constant UTC offset (the fast path)."""
        start = datetime(day.year, day.month, day.day)  # noqa: DTZ001 - a naive local wall time
        nxt = start + timedelta(days=1)
        offsets = {
            start.replace(tzinfo=tz, fold=0).utcoffset(),
            start.replace(tzinfo=tz, fold=1).utcoffset(),
            nxt.replace(tzinfo=tz, fold=0).utcoffset(),
            nxt.replace(tzinfo=tz, fold=1).utcoffset(),
        }
        if len(offsets) == 1:
            offset = offsets.pop() or timedelta(0)
            threshold = (after_utc + offset).replace(tzinfo=None)  # as a local wall time
            if threshold >= nxt:
                return None, True
            skip_before = threshold.hour if threshold.date() == day else -1
            for hour in self._sorted_hours:
                if hour < skip_before:
                    continue
                for minute in self._sorted_minutes:
                    wall = start.replace(hour=hour, minute=minute)
                    if wall > threshold:
                        return (wall - offset).replace(tzinfo=UTC), True
            return None, True
        best: datetime | None = None
        for hour in self._sorted_hours:
            for minute in self._sorted_minutes:
                for instant in _wall_instants(start.replace(hour=hour, minute=minute), tz, self.hour_star):
                    if instant > after_utc and (best is None or instant < best):
                        best = instant
        return best, False


def _first_of_next_month(day: date) -> date:
    return date(day.year + 1, 1, 1) if day.month == 12 else date(day.year, day.month + 1, 1)


def _wall_instants(wall: datetime, tz: tzinfo, follow_real_time: bool) -> tuple[datetime, ...]:
    """The UTC instants at which the naive local wall time ``wall`` fires (DST rule above)."""
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if first == second:
        return (first,)
    if first.astimezone(tz).replace(tzinfo=None) == wall:
        # Repeated by a fall-back change; fold=0 is the earlier occurrence.
        early, late = min(first, second), max(first, second)
        return (early, late) if follow_real_time else (early,)
    if follow_real_time:
        return ()
    # Skipped by a spring-forward change: fold=1 reads it with the offset after the change
    # (the earlier instant), fold=0 with the offset before it; the change lies in between.
    return (_transition(min(first, second), max(first, second), tz),)


def _transition(low: datetime, high: datetime, tz: tzinfo) -> datetime:
    """The first instant in (low, high] with the UTC offset ``high`` has (to the second)."""
    target = high.astimezone(tz).utcoffset()
    lo, hi = 0, int((high - low).total_seconds())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if (low + timedelta(seconds=mid)).astimezone(tz).utcoffset() == target:
            hi = mid
        else:
            lo = mid
    return low + timedelta(seconds=hi)


class Trigger(Protocol):
    """Something that says when a schedule fires next."""

    def next_fire(self, after: datetime) -> datetime:
        """The first fire time strictly after ``after`` (timezone-aware), in UTC."""
        ...


@dataclass(frozen=True, slots=True)
class CronTrigger:
    """A cron expression read in one time zone."""

    expr: CronExpr
    tz: tzinfo

    def next_fire(self, after: datetime) -> datetime:
        return self.expr.next_fire(after, self.tz)

    def __str__(self) -> str:
        return f"cron {self.expr.text!r} ({self.tz})"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class IntervalTrigger:
    """Every ``every`` of real time, at ``epoch + offset + n * every``."""

    every: timedelta
    offset: timedelta = timedelta(0)

    def __post_init__(self) -> None:
        if self.every <= timedelta(0):
            raise InputError(f"an interval must be positive, got {self.every}")
        if not timedelta(0) <= self.offset < self.every:
            raise InputError(f"an interval offset must be 0 <= offset < interval, got {self.offset}")

    def next_fire(self, after: datetime) -> datetime:
        if after.tzinfo is None or after.utcoffset() is None:
            raise InputError("next_fire needs a timezone-aware time")
        every_us = _micros(self.every)
        since = _micros(after.astimezone(UTC) - _EPOCH - self.offset)
        n = since // every_us + 1
        return _EPOCH + self.offset + timedelta(microseconds=n * every_us)

    def __str__(self) -> str:
        text = f"every {format_duration(self.every)}"
        return text + (f" + {format_duration(self.offset)}" if self.offset else "")


def _micros(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


_DURATION = re.compile(r"(\d{1,9})\s*(ms|s|m|h|d|w)")
_UNIT = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
_MAX_DURATION = timedelta(days=100 * 366)


def parse_duration(text: str | int) -> timedelta:
    """``"15m"``, ``"1h30m"``, ``"2d"``, ``"90s"``, ``"500ms"``, ``"1w"``; a bare integer is seconds.

    Raises :class:`~metercom.errors.InputError`.
    """
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise InputError(f"a duration is text such as '15m' or '1h30m', got {type(text).__name__}")
    if isinstance(text, int):
        if text < 0:
            raise InputError(f"a duration must not be negative, got {text}")
        total = timedelta(seconds=text)
    else:
        compact = text.strip().lower()
        pos, total, seen = 0, timedelta(0), False
        while pos < len(compact):
            m = _DURATION.match(compact, pos)
            if m is None:
                raise InputError(
                    f"cannot read the duration {text!r} (write e.g. 90s, 15m, 1h30m, 2d, 1w, 500ms)"
                )
            total += int(m[1]) * _UNIT[m[2]]
            pos = m.end()
            while pos < len(compact) and compact[pos] == " ":
                pos += 1
            seen = True
        if not seen:
            raise InputError("a duration must not be empty (write e.g. 15m)")
    if total > _MAX_DURATION:
        raise InputError(f"the duration {text!r} is longer than 100 years")
    return total


def format_duration(delta: timedelta) -> str:
    """The inverse of :func:`parse_duration`, in the largest units: ``1h30m``, ``2d``, ``0s``."""
    micros = _micros(delta)
    if micros % 1000:
        return f"{micros / 1e6}s"
    millis = micros // 1000
    if millis % 1000:
        return f"{millis}ms"
    seconds = millis // 1000
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"
