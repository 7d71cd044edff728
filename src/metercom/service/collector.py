"""Collecting: read a meter's plan, store what came back, and act on failures by error class.

Rule (DESIGN.md section 4): the collector acts by class.

* :class:`~metercom.errors.TransportError`: retry with exponential backoff
  (:class:`RetryPolicy`: ``transport_retries`` retries, ``transport_backoff_s`` doubling up to
  ``max_backoff_s``), at recovery priority.
* :class:`~metercom.errors.RemoteProtocolError`: keep the bytes (audit entry
  ``meter.protocol_error`` with the hex of what the meter sent), retry once, then quarantine
  the meter for ``protocol_quarantine_s``.
* :class:`~metercom.errors.DeviceRejectedError`: record it (status, audit); no retry. The meter
  answered, so it stays available.
* :class:`~metercom.errors.AuthenticationError`: quarantine the meter until it is released or
  its configuration changes, and raise the alarm.

A meter becomes *unavailable* when a read fails for good (its retries are used up) or it is
quarantined, and *available* again at its next successful conversation. Each change is logged
once and told once to the :class:`AvailabilityListener` (the notifications module), never per
attempt.

Theory of operation: every read of a (meter, plan) pair is one *read cycle*, a task that runs
the first attempt and its retries. While a cycle of a pair is active, further scheduled fires of
that pair are counted as ``missed`` instead of queueing behind it, so a meter that is down for
hours costs one retrying cycle, not a backlog. Attempts go through the
:class:`~metercom.service.scheduler.ConversationScheduler` (scheduled reads at scheduled
priority, retries at recovery priority, on-demand reads first). Retry times are absolute
(``failure time + delay``) so slow store writes do not stretch them.

Saving: readings are stored with the head-end's time at the end of the conversation as their
capture time unless the meter stamped them itself (a maximum demand's time); profile rows and
events with the meter's own time stamps. Every save carries its collection marker in the same
store transaction: a register marker at the newest reading, a profile or log marker at the newest
row. Profiles and logs are read from their marker on (at most the plan's ``history`` back).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final, Protocol

from metercom.clock import Clock, current_clock
from metercom.errors import (
    AuthenticationError,
    DeviceRejectedError,
    InputError,
    MetercomError,
    RemoteProtocolError,
    StoreError,
    TransportError,
)
from metercom.model.reading import Reading
from metercom.service.config_model import FleetConfig, MeterConfig, ReadPlan
from metercom.service.meters import CollectedData, MeterSession
from metercom.service.scheduler import (
    ConversationScheduler,
    MeterRemovedError,
    Priority,
    SchedulerStoppedError,
)
from metercom.service.status import StatusBoard
from metercom.service.store import Marker, Store, WriteResult

__all__ = [
    "AvailabilityListener",
    "CollectOutcome",
    "CollectedHook",
    "Collector",
    "ProfileSavedHook",
    "RetryPolicy",
]

log = logging.getLogger(__name__)

_ACTOR: Final = "collector"


class AvailabilityListener(Protocol):
    """Told once when a meter goes unavailable and once when it is back (notifications)."""

    async def on_meter_unavailable(self, meter: str, at: datetime, error: BaseException) -> None: ...

    async def on_meter_available(self, meter: str, at: datetime) -> None: ...


class ProfileSavedHook(Protocol):
    """Called after profile rows of a meter were saved (gap recovery checks the profile)."""

    async def __call__(self, meter_id: str, profile: str) -> None: ...


class CollectedHook(Protocol):
    """Called after a successful read of a plan was saved (rules, prepaid and meter-event alarms).

    ``since`` holds the start the read used for each profile and event log (its marker before
    this read, or the plan's history): entries newer than it are new.
    """

    async def __call__(
        self, meter: MeterConfig, data: CollectedData, since: Mapping[str, datetime]
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How the collector retries; see the module docstring."""

    transport_retries: int = 3
    transport_backoff_s: float = 30.0
    backoff_factor: float = 2.0
    max_backoff_s: float = 900.0
    protocol_retry_delay_s: float = 10.0
    #: How long a meter that twice sent corrupt data is left alone (``None``: until released).
    protocol_quarantine_s: float | None = 3600.0

    def __post_init__(self) -> None:
        if self.transport_retries < 0 or self.transport_backoff_s < 0 or self.protocol_retry_delay_s < 0:
            raise InputError("retry counts and delays must not be negative")
        if self.backoff_factor < 1:
            raise InputError(f"backoff_factor must be at least 1, got {self.backoff_factor}")

    def transport_delay_s(self, retry: int) -> float:
        """Delay before transport retry number ``retry`` (1-based)."""
        return min(self.transport_backoff_s * self.backoff_factor ** (retry - 1), self.max_backoff_s)


@dataclass(frozen=True, slots=True)
class CollectOutcome:
    """How a read cycle ended."""

    meter_id: str
    plan_id: str
    ok: bool
    attempts: int
    error: BaseException | None = None
    saved: WriteResult = field(default_factory=WriteResult)


class Collector:
    """Read cycles with retries, quarantine, availability and saving; see the module docstring."""

    def __init__(
        self,
        store: Store,
        scheduler: ConversationScheduler,
        status: StatusBoard,
        *,
        clock: Clock | None = None,
        retry: RetryPolicy | None = None,
        listener: AvailabilityListener | None = None,
    ) -> None:
        self.store = store
        self.scheduler = scheduler
        self.status = status
        self.retry = retry or RetryPolicy()
        self.listener = listener
        self.on_profile_saved: ProfileSavedHook | None = None
        self.on_collected: CollectedHook | None = None
        self._clock = clock
        self._config: FleetConfig | None = None
        # Pairs whose cycle has not finished its conversation; a pair leaves this set before its
        # data is saved, so a slow store never makes the next scheduled read count as missed.
        self._reading: set[tuple[str, str]] = set()
        self._tasks: set[asyncio.Task[CollectOutcome]] = set()
        self._by_key: dict[tuple[str, str], asyncio.Task[CollectOutcome]] = {}
        self._retry_at: dict[str, datetime] = {}
        self._stopping = False

    @property
    def clock(self) -> Clock:
        return self._clock or current_clock()

    @property
    def config(self) -> FleetConfig:
        if self._config is None:
            raise MeterRemovedError("the collector has no configuration yet")
        return self._config

    def configure(self, config: FleetConfig) -> None:
        """Take a new configuration: quarantines of changed meters are lifted (a new password is
        the usual fix), status records of removed meters dropped. Running cycles finish."""
        old = self._config
        self._config = config
        for meter in config.meters:
            status = self.status.get(meter.id)
            status.line_id, status.protocol, status.enabled = meter.line, meter.protocol.value, meter.enabled
            if old is not None and status.quarantined:
                try:
                    before = old.meter(meter.id)
                except KeyError:
                    before = None
                if before != meter:
                    self._lift(meter.id, "its configuration changed")
        known = {m.id for m in config.meters}
        for entry in self.status.snapshot():
            if entry.meter_id not in known:
                self.status.remove(entry.meter_id)

    # -- starting reads --------------------------------------------------------------------------

    def request(self, meter_id: str, plan_id: str, *, priority: Priority = Priority.SCHEDULED) -> bool:
        """Start a read cycle of ``plan_id`` for ``meter_id`` unless one is active or the meter is
        quarantined (counted as missed); True when a cycle was started."""
        if self._stopping:
            return False
        status = self.status.get(meter_id)
        if self._quarantined(meter_id):
            status.missed += 1
            return False
        key = (meter_id, plan_id)
        if key in self._reading:
            status.missed += 1
            return False
        self._start(key, priority)
        return True

    def _start(self, key: tuple[str, str], priority: Priority) -> asyncio.Task[CollectOutcome]:
        self._reading.add(key)
        task = asyncio.create_task(self._cycle(key[0], key[1], priority), name=f"read {key[0]} {key[1]}")
        self._tasks.add(task)
        self._by_key[key] = task
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _: self._reading.discard(key))
        task.add_done_callback(lambda t: self._by_key.pop(key) if self._by_key.get(key) is t else None)
        return task

    async def collect(self, meter_id: str, plan_id: str) -> CollectOutcome:
        """Read a plan now at on-demand priority, with the class rules; waits for the outcome.
        If a cycle of the pair is already reading, its outcome is returned."""
        key = (meter_id, plan_id)
        active = self._by_key.get(key)
        if key in self._reading and active is not None and not active.done():
            self.scheduler.promote(meter_id, Priority.ON_DEMAND)
            return await asyncio.shield(active)
        if self._quarantined(meter_id):
            reason = self.status.get(meter_id).quarantine_reason
            error = MeterRemovedError(f"meter {meter_id} is quarantined: {reason}")
            return CollectOutcome(meter_id, plan_id, False, 0, error)
        return await asyncio.shield(self._start(key, Priority.ON_DEMAND))

    @property
    def active_cycles(self) -> int:
        return sum(1 for task in self._tasks if not task.done())

    def retry_at(self, meter_id: str) -> datetime | None:
        """When a retry of the meter is due, if one is waiting."""
        return self._retry_at.get(meter_id)

    # -- quarantine ------------------------------------------------------------------------------

    def _quarantined(self, meter_id: str) -> bool:
        status = self.status.get(meter_id)
        if not status.quarantined:
            return False
        if status.quarantined_until is not None and self.clock.now() >= status.quarantined_until:
            self._lift(meter_id, "its quarantine time ended")
            return False
        return True

    def release(self, meter_id: str) -> bool:
        """Lift a quarantine by hand; True if the meter was quarantined."""
        if not self.status.get(meter_id).quarantined:
            return False
        self._lift(meter_id, "released by an operator")
        return True

    def _lift(self, meter_id: str, why: str) -> None:
        status = self.status.get(meter_id)
        status.quarantined = False
        status.quarantine_reason = None
        status.quarantined_until = None
        log.info("meter %s: quarantine lifted: %s", meter_id, why)

    async def _quarantine(self, meter: MeterConfig, error: BaseException, *, seconds: float | None) -> None:
        now = self.clock.now()
        status = self.status.get(meter.id)
        status.quarantined = True
        status.quarantine_reason = f"{type(error).__name__}: {error}"
        status.quarantined_until = now + timedelta(seconds=seconds) if seconds is not None else None
        await self._audit("meter.quarantined", meter.id, "quarantined", {"error": status.quarantine_reason})
        await self._unavailable(meter.id, now, error)

    async def report(self, meter_id: str, error: BaseException | None) -> None:
        """Account a conversation run outside a read cycle (a command): success marks the meter
        available; an authentication failure quarantines it; other errors are recorded."""
        meter = self.config.meter(meter_id)
        if error is None:
            self.status.get(meter.id).consecutive_failures = 0
            await self._available(meter.id, self.clock.now())
            return
        await self._failed(meter, error)
        if isinstance(error, AuthenticationError):
            await self._quarantine(meter, error, seconds=None)

    def quarantined(self, meter_id: str) -> bool:
        """True while the meter is quarantined (an expired quarantine is lifted here)."""
        return self._quarantined(meter_id)

    # -- availability ----------------------------------------------------------------------------

    async def _unavailable(self, meter_id: str, at: datetime, error: BaseException) -> None:
        status = self.status.get(meter_id)
        if not status.available:
            return
        status.available = False
        log.warning("meter %s is unavailable: %s: %s", meter_id, type(error).__name__, error)
        if self.listener is not None:
            try:
                await self.listener.on_meter_unavailable(meter_id, at, error)
            except Exception:
                log.exception("availability listener failed for meter %s", meter_id)

    async def _available(self, meter_id: str, at: datetime) -> None:
        status = self.status.get(meter_id)
        if status.available:
            return
        status.available = True
        log.warning("meter %s is available again", meter_id)
        if self.listener is not None:
            try:
                await self.listener.on_meter_available(meter_id, at)
            except Exception:
                log.exception("availability listener failed for meter %s", meter_id)

    # -- one read cycle --------------------------------------------------------------------------

    async def _cycle(self, meter_id: str, plan_id: str, priority: Priority) -> CollectOutcome:
        loop = asyncio.get_running_loop()
        transport_failures = protocol_failures = attempts = 0
        status = self.status.get(meter_id)
        while True:
            try:
                meter = self.config.meter(meter_id)
                plan = self.config.plan(plan_id)
            except KeyError:
                return CollectOutcome(
                    meter_id, plan_id, False, attempts, MeterRemovedError(f"{meter_id}/{plan_id} removed")
                )
            attempts += 1
            status.last_attempt_at = self.clock.now()
            try:
                since = await self._since(meter, plan)
                data = await self.scheduler.submit(
                    meter_id,
                    lambda session, plan=plan, since=since: self._read(session, plan, since),  # type: ignore[misc]
                    priority=priority,
                    label=f"read {plan_id}",
                )
            except (SchedulerStoppedError, MeterRemovedError) as exc:
                return CollectOutcome(meter_id, plan_id, False, attempts, exc)
            except TransportError as exc:
                failed_s = loop.time()
                transport_failures += 1
                await self._failed(meter, exc)
                if transport_failures > self.retry.transport_retries:
                    await self._unavailable(meter_id, self.clock.now(), exc)
                    return CollectOutcome(meter_id, plan_id, False, attempts, exc)
                await self._wait_retry(meter_id, failed_s + self.retry.transport_delay_s(transport_failures))
                priority = min(priority, Priority.RECOVERY)
                continue
            except RemoteProtocolError as exc:
                failed_s = loop.time()
                protocol_failures += 1
                await self._failed(meter, exc)
                await self._audit(
                    "meter.protocol_error",
                    meter_id,
                    "error",
                    {
                        "error": str(exc),
                        "layer": exc.layer,
                        "bytes": exc.data.hex() if exc.data is not None else None,
                        "attempt": attempts,
                    },
                )
                if protocol_failures > 1:
                    await self._quarantine(meter, exc, seconds=self.retry.protocol_quarantine_s)
                    return CollectOutcome(meter_id, plan_id, False, attempts, exc)
                await self._wait_retry(meter_id, failed_s + self.retry.protocol_retry_delay_s)
                priority = min(priority, Priority.RECOVERY)
                continue
            except AuthenticationError as exc:
                await self._failed(meter, exc)
                await self._quarantine(meter, exc, seconds=None)
                return CollectOutcome(meter_id, plan_id, False, attempts, exc)
            except DeviceRejectedError as exc:
                await self._failed(meter, exc)
                await self._audit(
                    "meter.rejected", meter_id, "rejected", {"error": str(exc), "code": str(exc.code)}
                )
                return CollectOutcome(meter_id, plan_id, False, attempts, exc)
            except MetercomError as exc:
                await self._failed(meter, exc)
                return CollectOutcome(meter_id, plan_id, False, attempts, exc)
            except Exception as exc:
                log.exception("meter %s: reading %s failed unexpectedly", meter_id, plan_id)
                await self._failed(meter, exc)
                return CollectOutcome(meter_id, plan_id, False, attempts, exc)
            self._reading.discard((meter_id, plan_id))
            try:
                saved = await self.save(meter, data)
            except (StoreError, InputError) as exc:
                log.error("meter %s: storing %s failed: %s", meter_id, plan_id, exc)
                await self._failed(meter, exc)
                return CollectOutcome(meter_id, plan_id, False, attempts, exc)
            await self._succeeded(meter, data)
            if self.on_collected is not None:
                try:
                    await self.on_collected(meter, data, since)
                except Exception:
                    log.exception("meter %s: the collected-data hook failed for %s", meter_id, plan_id)
            return CollectOutcome(meter_id, plan_id, True, attempts, None, saved)

    async def _read(
        self, session: MeterSession, plan: ReadPlan, since: Mapping[str, datetime]
    ) -> CollectedData:
        return await session.read(plan, since=since, now=self.clock.now())

    async def _wait_retry(self, meter_id: str, due_s: float) -> None:
        loop = asyncio.get_running_loop()
        self._retry_at[meter_id] = self.clock.now() + timedelta(seconds=max(0.0, due_s - loop.time()))
        try:
            delay_s = due_s - loop.time()
            if delay_s > 0:
                await asyncio.sleep(delay_s)
        finally:
            self._retry_at.pop(meter_id, None)

    async def _since(self, meter: MeterConfig, plan: ReadPlan) -> dict[str, datetime]:
        now = self.clock.now()
        since: dict[str, datetime] = {}
        for item in (*plan.profiles, *plan.events):
            key = str(item.obis)
            floor = now - item.history
            marker = await self.store.marker(meter.id, key)
            since[key] = max(marker, floor) if marker is not None else floor
        return since

    async def _failed(self, meter: MeterConfig, error: BaseException) -> None:
        status = self.status.get(meter.id)
        status.last_error = str(error)
        status.last_error_class = type(error).__name__
        status.last_error_at = self.clock.now()
        status.consecutive_failures += 1
        status.reads_failed += 1
        log.debug("meter %s: %s: %s", meter.id, type(error).__name__, error)

    async def _succeeded(self, meter: MeterConfig, data: CollectedData) -> None:
        now = self.clock.now()
        status = self.status.get(meter.id)
        status.last_read_at = now
        status.consecutive_failures = 0
        status.reads_ok += 1
        status.missing = data.missing
        await self._available(meter.id, now)

    async def _audit(self, action: str, meter_id: str, result: str, detail: Mapping[str, object]) -> None:
        try:
            await self.store.audit(
                actor=_ACTOR, action=action, subject=meter_id, result=result, detail=detail
            )
        except StoreError as exc:
            log.error("audit %s for %s not written: %s", action, meter_id, exc)

    # -- saving ----------------------------------------------------------------------------------

    async def save(self, meter: MeterConfig, data: CollectedData) -> WriteResult:
        """Store what a read brought back, each series with its marker in one transaction."""
        now = self.clock.now()
        total = WriteResult()
        readings = [r for r in data.readings if r.obis is not None or r.address]
        if readings:
            anchor = next((r for r in readings if r.captured_at is None), readings[0])
            marker = Marker(_reading_key(anchor), anchor.captured_at or now)
            total += await self.store.save_readings(meter.id, readings, marker=marker, capture_time=now)
        for profile, rows in data.profile_rows.items():
            if rows:
                newest = max(row.capture_time for row in rows)
                total += await self.store.save_profile_rows(
                    meter.id, profile, rows, marker=Marker(profile, newest)
                )
                if self.on_profile_saved is not None:
                    try:
                        await self.on_profile_saved(meter.id, profile)
                    except Exception:
                        log.exception("meter %s: profile hook failed for %s", meter.id, profile)
        for log_name, events in data.events.items():
            if events:
                newest = max(event.time for event in events)
                total += await self.store.save_events(meter.id, events, marker=Marker(log_name, newest))
        return total

    # -- shutdown --------------------------------------------------------------------------------

    async def wait_idle(self) -> None:
        """Wait until no read cycle is active."""
        while True:
            tasks = [task for task in self._tasks if not task.done()]
            if not tasks:
                return
            await asyncio.wait(tasks)

    def close_intake(self) -> None:
        """Start no more read cycles (the first step of a shutdown)."""
        self._stopping = True

    async def stop(self) -> None:
        """Start no more cycles and cancel the active ones. Call it after the scheduler stopped,
        so no conversation is cut here: what is left waits for a retry or a store write."""
        self._stopping = True
        tasks = [task for task in self._tasks if not task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)


def _reading_key(reading: Reading) -> str:
    return str(reading.obis) if reading.obis is not None else reading.address
