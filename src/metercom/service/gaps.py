"""Gap detection and load-profile recovery: find the capture intervals missing from the store and
re-read exactly those from the meter.

Rule (DESIGN.md section 6): gaps are found from the meter's *own* time stamps as stored (UTC,
converted with the deviation the meter sent), never from the head-end's clock or from wall
time in a zone: a day with a DST change has 92 or 100 quarter hours in UTC and no false gap or
duplicate, and a meter whose clock is off still has its rows one period apart.

Theory of operation:

* :func:`find_gaps` walks the stored capture times of one profile in order. Between two stored
  rows ``a`` and ``b`` more than a period apart (with a tolerance of half a period for rows a
  meter stamped late, e.g. after a clock set), the instants ``a + period .. b - period`` are
  missing: one :class:`Gap`. Only gaps *between* stored rows count: before the oldest row the
  meter may not have existed, and after the marker the data was simply not collected yet.
* :func:`merge_gaps` joins gaps separated by at most ``join`` stored rows (re-reading those
  rows is harmless: saving is an idempotent upsert) and :func:`split_gap` bounds each request
  to ``max_span`` so one recovery never asks a meter for days in one buffer.
* :class:`GapRecovery` checks a profile after the collector saved rows of it
  (:attr:`~metercom.service.collector.Collector.on_profile_saved`) and on demand
  (:meth:`GapRecovery.check`), from ``lookback`` (default 7 days, at least the plan's history)
  before the profile's marker up to it; once a series is known complete up to a marker, later
  checks look only a day before that point (enough to infer the period). It
  queues one conversation per bounded range at
  :attr:`~metercom.service.scheduler.Priority.RECOVERY` priority (behind commands, ahead of
  scheduled reads) and saves what came back with actor ``recovery``; the marker is not moved.
  A range the meter returns no rows for (it recorded nothing: beyond its buffer, or it was
  without power and does not capture) is remembered, audited once as
  ``profile.gap_unrecoverable`` and not asked for again by this process. One check runs per
  (meter, profile) at a time; a request while one runs is folded into a re-check at its end.
* The capture period comes from the meter's ``capture_period_s`` quirk, else from the stored
  rows (the most common step between consecutive rows, seen at least twice).
* :func:`read_range` reads a range in bounded chunks within one conversation; the ``recover``
  command uses it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from metercom.clock import Clock, current_clock
from metercom.errors import InputError, MetercomError, StoreError
from metercom.model.obis import Obis
from metercom.service.config_model import FleetConfig, MeterConfig
from metercom.service.meters import MeterSession
from metercom.service.scheduler import ConversationScheduler, Priority
from metercom.service.store import ProfileRow, Store

__all__ = [
    "DEFAULT_MAX_SPAN",
    "Gap",
    "GapRecovery",
    "RecoveryResult",
    "find_gaps",
    "infer_period",
    "merge_gaps",
    "read_range",
    "split_gap",
]

log = logging.getLogger(__name__)

#: Longest range one recovery request asks for (a day of 15-minute rows: 96).
DEFAULT_MAX_SPAN: Final = timedelta(days=1)
#: How far back from the marker gaps are looked for (at least the plan's history).
DEFAULT_LOOKBACK: Final = timedelta(days=7)
_ACTOR: Final = "recovery"


@dataclass(frozen=True, slots=True, order=True)
class Gap:
    """Missing capture instants ``first`` .. ``last`` (both inclusive, UTC)."""

    first: datetime
    last: datetime

    def __post_init__(self) -> None:
        for name in ("first", "last"):
            value = getattr(self, name)
            if value.tzinfo is None:
                raise InputError(f"gap {name} must be timezone-aware, got {value.isoformat()}")
            object.__setattr__(self, name, value.astimezone(UTC))
        if self.last < self.first:
            raise InputError(f"gap ends before it starts: {self.first.isoformat()} > {self.last.isoformat()}")

    def intervals(self, period: timedelta) -> int:
        """How many capture instants the gap holds."""
        return (self.last - self.first) // period + 1


def _utc(times: Iterable[datetime]) -> list[datetime]:
    out = []
    for t in times:
        if t.tzinfo is None:
            raise InputError(f"capture times must be timezone-aware, got {t.isoformat()}")
        out.append(t.astimezone(UTC))
    return sorted(set(out))


def find_gaps(times: Iterable[datetime], period: timedelta) -> list[Gap]:
    """Missing instants between the stored capture times (see the module docstring)."""
    if period <= timedelta(0):
        raise InputError(f"the capture period must be positive, got {period}")
    stamps = _utc(times)
    tolerance = period / 2
    gaps: list[Gap] = []
    for a, b in itertools.pairwise(stamps):
        if b - a > period + tolerance:
            gaps.append(Gap(a + period, max(b - period, a + period)))
    return gaps


def merge_gaps(gaps: Iterable[Gap], period: timedelta, *, join: int = 1) -> list[Gap]:
    """Join gaps with at most ``join`` stored instants between them (sorted result)."""
    merged: list[Gap] = []
    for gap in sorted(gaps):
        if merged and gap.first - merged[-1].last <= period * (join + 1):
            merged[-1] = Gap(merged[-1].first, max(merged[-1].last, gap.last))
        else:
            merged.append(gap)
    return merged


def split_gap(gap: Gap, max_span: timedelta, period: timedelta | None = None) -> list[Gap]:
    """``gap`` in consecutive pieces spanning at most ``max_span`` each. With ``period`` the
    pieces hold whole capture instants (each instant in exactly one piece); without, they are
    contiguous time ranges."""
    if max_span <= timedelta(0):
        raise InputError(f"max_span must be positive, got {max_span}")
    span = max_span
    step = timedelta(microseconds=1)
    if period is not None and period > timedelta(0):
        span = max(max_span // period, 1) * period if max_span >= period else timedelta(0)
        step = period
    pieces: list[Gap] = []
    start = gap.first
    while start <= gap.last:
        end = min(start + span, gap.last)
        pieces.append(Gap(start, end))
        start = end + step
    return pieces


def infer_period(times: Sequence[datetime]) -> timedelta | None:
    """The most common step between consecutive capture times, if seen at least twice."""
    stamps = _utc(times)
    steps = Counter(b - a for a, b in itertools.pairwise(stamps) if b > a)
    if not steps:
        return None
    step, seen = steps.most_common(1)[0]
    return step if seen >= 2 else None


async def read_range(
    session: MeterSession,
    profile: Obis,
    start: datetime,
    end: datetime,
    *,
    max_span: timedelta = DEFAULT_MAX_SPAN,
) -> list[ProfileRow]:
    """Rows of ``profile`` captured in ``start``..``end``, read in pieces of at most ``max_span``."""
    rows: dict[datetime, ProfileRow] = {}
    for piece in split_gap(Gap(start, end), max_span):
        for row in await session.read_profile(profile, piece.first, piece.last):
            rows[row.capture_time] = row
    return [rows[t] for t in sorted(rows)]


@dataclass(frozen=True, slots=True)
class RecoveryResult:
    """What one check of a profile found and re-read."""

    meter_id: str
    profile: str
    gaps: tuple[Gap, ...] = ()
    rows: int = 0
    unrecoverable: tuple[Gap, ...] = ()


class GapRecovery:
    """Finds gaps of stored profiles and re-reads them; see the module docstring."""

    def __init__(
        self,
        store: Store,
        scheduler: ConversationScheduler,
        *,
        clock: Clock | None = None,
        max_span: timedelta = DEFAULT_MAX_SPAN,
        join: int = 1,
        lookback: timedelta = DEFAULT_LOOKBACK,
    ) -> None:
        self.store = store
        self.scheduler = scheduler
        self.max_span = max_span
        self.join = join
        self.lookback = lookback
        self._clock = clock
        # Per (meter, profile): the series is known complete up to here (no need to look again).
        self._complete_until: dict[tuple[str, str], datetime] = {}
        self._last_marker: dict[tuple[str, str], datetime] = {}
        self._config: FleetConfig | None = None
        self._tasks: dict[tuple[str, str], asyncio.Task[RecoveryResult]] = {}
        self._again: set[tuple[str, str]] = set()
        self._given_up: set[tuple[str, str, Gap]] = set()
        #: Results of the last 1000 checks that found something, newest last (status and tests).
        self.history: deque[RecoveryResult] = deque(maxlen=1000)

    @property
    def clock(self) -> Clock:
        return self._clock or current_clock()

    def configure(self, config: FleetConfig) -> None:
        self._config = config

    def _lookback(self, meter: MeterConfig, profile: str) -> timedelta | None:
        """The longest history any plan gives this profile (``None``: no plan reads it)."""
        config = self._config
        if config is None:
            return None
        spans = [item.history for plan in config.plans for item in plan.profiles if str(item.obis) == profile]
        del meter
        return max(spans) if spans else None

    # -- the hook and the background checks -----------------------------------------------------

    async def on_profile_saved(self, meter_id: str, profile: str) -> None:
        """Collector hook: check the profile in the background (never blocks the read cycle)."""
        self.request(meter_id, profile)

    def request(self, meter_id: str, profile: str) -> None:
        key = (meter_id, profile)
        running = self._tasks.get(key)
        if running is not None and not running.done():
            self._again.add(key)
            return
        task = asyncio.create_task(self._run(meter_id, profile), name=f"gaps {meter_id} {profile}")
        self._tasks[key] = task
        task.add_done_callback(lambda t: self._tasks.pop(key) if self._tasks.get(key) is t else None)

    async def _run(self, meter_id: str, profile: str) -> RecoveryResult:
        key = (meter_id, profile)
        while True:
            self._again.discard(key)
            try:
                result = await self.check(meter_id, profile)
            except (MetercomError, KeyError) as exc:
                log.warning(
                    "meter %s: gap recovery of %s failed: %s: %s", meter_id, profile, type(exc).__name__, exc
                )
                result = RecoveryResult(meter_id, profile)
            if key not in self._again:
                return result

    @property
    def active(self) -> int:
        return sum(1 for task in self._tasks.values() if not task.done())

    async def wait_idle(self) -> None:
        while True:
            tasks = [task for task in self._tasks.values() if not task.done()]
            if not tasks:
                return
            await asyncio.wait(tasks)

    async def stop(self) -> None:
        tasks = [task for task in self._tasks.values() if not task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)

    # -- one check -------------------------------------------------------------------------------

    async def find(self, meter_id: str, profile: Obis | str, *, since: datetime | None = None) -> list[Gap]:
        """Gaps of a stored profile from ``since`` (default: the plan's history back from its
        marker) up to the marker, merged and split into bounded requests."""
        name = str(profile)
        marker = await self.store.marker(meter_id, name)
        if marker is None:
            return []
        if since is None:
            meter = self._config.meter(meter_id) if self._config is not None else None
            history = self._lookback(meter, name) if meter is not None else None
            since = marker - max(history or self.lookback, self.lookback)
            complete = self._complete_until.get((meter_id, name))
            if complete is not None:
                # A day of context before the known-complete point keeps the period inferable.
                since = max(since, complete - self.max_span)
        self._last_marker[(meter_id, name)] = marker
        times = await self.store.profile_times(
            meter_id, name, since=since, until=marker + timedelta(microseconds=1)
        )
        period = self._period(meter_id, times)
        if period is None:
            return []
        gaps = merge_gaps(find_gaps(times, period), period, join=self.join)
        return [piece for gap in gaps for piece in split_gap(gap, self.max_span, period)]

    def _period(self, meter_id: str, times: Sequence[datetime]) -> timedelta | None:
        if self._config is not None:
            try:
                quirk = self._config.meter(meter_id).quirks.get("capture_period_s")
            except KeyError:
                quirk = None
            if isinstance(quirk, int | float) and not isinstance(quirk, bool) and quirk > 0:
                return timedelta(seconds=quirk)
        return infer_period(times)

    async def check(
        self, meter_id: str, profile: Obis | str, *, since: datetime | None = None
    ) -> RecoveryResult:
        """Find the profile's gaps and re-read them at recovery priority; see the module docstring."""
        name = str(profile)
        obis = Obis.parse(name) if isinstance(profile, str) else profile
        found = await self.find(meter_id, name, since=since)
        marker = self._last_marker.get((meter_id, name))
        gaps = [g for g in found if (meter_id, name, g) not in self._given_up]
        if not gaps:
            if marker is not None and since is None:
                self._complete_until[(meter_id, name)] = marker
            return RecoveryResult(meter_id, name)
        log.info("meter %s: %d gap range(s) in %s; re-reading them", meter_id, len(gaps), name)
        total = 0
        lost: list[Gap] = []
        for gap in gaps:

            async def work(session: MeterSession, gap: Gap = gap) -> list[ProfileRow]:
                return await session.read_profile(obis, gap.first, gap.last)

            rows = await self.scheduler.submit(
                meter_id, work, priority=Priority.RECOVERY, label=f"recover {name}"
            )
            rows = [r for r in rows if gap.first <= r.capture_time <= gap.last]
            if not rows:
                lost.append(gap)
                self._given_up.add((meter_id, name, gap))
                await self._audit_lost(meter_id, name, gap)
                continue
            saved = await self.store.save_profile_rows(meter_id, name, rows, actor=_ACTOR)
            total += saved.inserted
        result = RecoveryResult(meter_id, name, tuple(gaps), total, tuple(lost))
        if marker is not None and since is None:
            self._complete_until[(meter_id, name)] = marker  # every gap was re-read or given up
        self.history.append(result)
        return result

    async def _audit_lost(self, meter_id: str, profile: str, gap: Gap) -> None:
        log.warning(
            "meter %s: %s has no rows for %s .. %s; the gap stays",
            meter_id,
            profile,
            gap.first.isoformat(),
            gap.last.isoformat(),
        )
        try:
            await self.store.audit(
                actor=_ACTOR,
                action="profile.gap_unrecoverable",
                subject=meter_id,
                result="empty",
                detail={"profile": profile, "first": gap.first.isoformat(), "last": gap.last.isoformat()},
            )
        except StoreError as exc:
            log.error("audit of an unrecoverable gap of %s not written: %s", meter_id, exc)
