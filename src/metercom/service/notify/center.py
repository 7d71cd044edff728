"""The alarm centre: de-duplicates alarms, keeps their state, routes and delivers notifications.

Rule: raising, acknowledging and clearing are plain synchronous calls that never wait and never
raise because of delivery; delivery happens behind them in background workers, one per channel,
with a bounded queue, retries with exponential backoff, and every attempt recorded on the
alarm (:class:`~metercom.service.notify.alarms.DeliveryRecord`). A full queue drops the new
delivery and records it as dropped; it never blocks the collector that raised the alarm.

Theory of operation:

* **Episodes.** An alarm whose ``dedup_key`` has an active (not cleared) record is another
  occurrence of that episode: counted (``count``, ``last``), not a new record.
* **Quiet period.** At most one notification per ``dedup_key`` per ``quiet_period``, measured
  on the alarms' own times (``Alarm.at``), so a burst read late from a meter's event log gives
  one message with a count, exactly as if it had been live. After the quiet period a further
  occurrence is sent again as ``repeated`` (with the count) unless someone acknowledged the
  episode: acknowledged episodes stay quiet until cleared. A clear is notified once, and only
  if the episode itself was notified.
* **State.** ``open`` -> ``acknowledged`` (:meth:`AlarmCenter.acknowledge`: who and when) ->
  ``cleared`` (:meth:`AlarmCenter.clear`; clearing works from either state and is idempotent).
* **Routing.** :class:`~metercom.service.notify.alarms.Route` rules pick channels by kind,
  severity, meter and event; a notification goes once to each channel of every matching route.
* **Communication loss.** :meth:`AlarmCenter.link_down` raises one ``comm_loss`` alarm when a
  meter becomes unreachable (later calls while it stays down only count) and
  :meth:`AlarmCenter.link_up` clears it once when the meter answers again, notifying
  ``comm_restored`` to the routes that received the loss.
* **Retries.** A channel failure is retried after ``first_delay_s``, doubling up to
  ``max_delay_s`` (or after the server's Retry-After), until ``max_attempts``; a permanent
  failure (bad credentials, refused address) is not retried. Waiting uses the event loop's
  clock, so on a :class:`~metercom.clock.VirtualClock` retries take no real time.

Records live in memory (``history`` most recent episodes); the head-end persists what it needs
from them (records are plain data): :attr:`AlarmCenter.on_change` is called with every record
that changed (raised, counted, acknowledged, cleared, a delivery attempt), and
:meth:`AlarmCenter.restore` puts stored episodes back after a restart.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType

from metercom.clock import Clock, current_clock
from metercom.errors import ConfigError, NotifyError
from metercom.service.notify.alarms import (
    Alarm,
    AlarmKind,
    AlarmRecord,
    AlarmState,
    DeliveryRecord,
    DeliveryStatus,
    Notification,
    NotificationEvent,
    Route,
)
from metercom.service.notify.channel import Channel, PermanentDeliveryError, RetryLater

__all__ = ["AlarmCenter", "RaiseResult", "RetryPolicy"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff for failed deliveries: ``first_delay_s`` x ``factor`` ** n, at most ``max_delay_s``."""

    max_attempts: int = 6
    first_delay_s: float = 5.0
    factor: float = 2.0
    max_delay_s: float = 600.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.first_delay_s < 0 or self.factor < 1 or self.max_delay_s < 0:
            raise ConfigError(f"invalid retry policy {self}")

    def delay_s(self, failed_attempts: int) -> float:
        """Seconds to wait after the ``failed_attempts``-th failure."""
        return min(self.max_delay_s, self.first_delay_s * self.factor ** max(0, failed_attempts - 1))


@dataclass(frozen=True, slots=True)
class RaiseResult:
    """What :meth:`AlarmCenter.raise_alarm` did with an alarm."""

    record: AlarmRecord
    new: bool
    notified: bool


_Item = tuple[float, int, DeliveryRecord, Notification]


class _Worker:
    """Delivers one channel's queue in order of due time, one at a time."""

    def __init__(self, center: AlarmCenter, name: str, channel: Channel) -> None:
        self.center = center
        self.name = name
        self.channel = channel
        self.heap: list[_Item] = []
        self.wake = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()
        self.busy = False
        self.task: asyncio.Task[None] | None = None

    def put(self, record: DeliveryRecord, notification: Notification, due: float) -> bool:
        if len(self.heap) >= self.center.queue_size:
            return False
        heapq.heappush(self.heap, (due, next(self.center._order), record, notification))
        self.idle.clear()
        self.wake.set()
        return True

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self.heap:
                self.idle.set()
                self.wake.clear()
                await self.wake.wait()
                continue
            wait = self.heap[0][0] - loop.time()
            if wait > 0:
                self.wake.clear()
                try:
                    async with asyncio.timeout(wait):
                        await self.wake.wait()
                except TimeoutError:
                    pass
                continue
            _, _, record, notification = heapq.heappop(self.heap)
            self.busy = True
            try:
                await self._attempt(record, notification, loop)
            finally:
                self.busy = False
                self.center._changed(record.alarm_id)

    async def _attempt(
        self, record: DeliveryRecord, notification: Notification, loop: asyncio.AbstractEventLoop
    ) -> None:
        center = self.center
        record.attempts += 1
        try:
            await self.channel.send(notification)
        except asyncio.CancelledError:
            raise
        except PermanentDeliveryError as exc:
            record.status = DeliveryStatus.FAILED
            record.last_error = str(exc)
            center.failed += 1
            log.error("%s: delivery %s failed permanently: %s", self.name, record.delivery_id, exc)
            return
        except Exception as exc:  # noqa: BLE001 - a channel's failure must never stop the worker
            record.last_error = (
                f"{type(exc).__name__}: {exc}" if not isinstance(exc, NotifyError) else str(exc)
            )
            if record.attempts >= center.retry.max_attempts:
                record.status = DeliveryStatus.FAILED
                center.failed += 1
                log.error(
                    "%s: delivery %s failed after %d attempts: %s",
                    self.name,
                    record.delivery_id,
                    record.attempts,
                    record.last_error,
                )
                return
            delay = center.retry.delay_s(record.attempts)
            if isinstance(exc, RetryLater):
                delay = min(center.retry.max_delay_s, max(delay, exc.retry_after_s))
            log.warning(
                "%s: delivery %s attempt %d failed (%s); retrying in %.1f s",
                self.name,
                record.delivery_id,
                record.attempts,
                record.last_error,
                delay,
            )
            heapq.heappush(self.heap, (loop.time() + delay, next(center._order), record, notification))
            return
        record.status = DeliveryStatus.DELIVERED
        record.delivered_at = center.now()
        center.delivered += 1


class AlarmCenter:
    """Alarm state, de-duplication, routing and delivery (see the module docstring).

    Use ``async with AlarmCenter(...) as center:`` (or :meth:`start` / :meth:`aclose`).
    Alarms raised before the start are kept and delivered once the workers run.
    """

    def __init__(
        self,
        channels: Mapping[str, Channel],
        routes: Sequence[Route],
        *,
        quiet_period: timedelta = timedelta(minutes=30),
        queue_size: int = 1000,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
        history: int = 10_000,
    ) -> None:
        for route in routes:
            unknown = [name for name in route.channels if name not in channels]
            if unknown:
                raise ConfigError(f"route names unknown channel(s) {unknown}; known: {sorted(channels)}")
        if queue_size < 1 or history < 1 or quiet_period < timedelta(0):
            raise ConfigError("queue_size and history must be positive and quiet_period not negative")
        self.routes = tuple(routes)
        self.quiet_period = quiet_period
        self.queue_size = queue_size
        self.retry = retry or RetryPolicy()
        self.history = history
        self._clock = clock
        self._workers = {name: _Worker(self, name, channel) for name, channel in channels.items()}
        self._order = itertools.count()
        self._records: OrderedDict[str, AlarmRecord] = OrderedDict()
        self._active: dict[str, AlarmRecord] = {}
        self._last_notified: dict[str, datetime] = {}
        self._started = False
        self.delivered = 0
        self.failed = 0
        self.dropped = 0
        #: Called (synchronously) with each record that changed; must not raise or block.
        self.on_change: Callable[[AlarmRecord], None] | None = None

    # ---- lifecycle

    async def start(self) -> None:
        """Start one delivery worker per channel."""
        if self._started:
            return
        self._started = True
        for worker in self._workers.values():
            worker.task = asyncio.create_task(worker.run(), name=f"notify:{worker.name}")

    async def wait_idle(self) -> None:
        """Wait until every queue is empty (pending retries included)."""
        while True:
            for worker in self._workers.values():
                await worker.idle.wait()
            if all(w.idle.is_set() and not w.heap and not w.busy for w in self._workers.values()):
                return

    async def aclose(self, drain_s: float = 5.0) -> None:
        """Deliver what can be delivered within ``drain_s``, then stop the workers and close channels.

        Deliveries still queued stay ``pending`` on their records.
        """
        if self._started and drain_s > 0:
            try:
                async with asyncio.timeout(drain_s):
                    await self.wait_idle()
            except TimeoutError:
                log.warning("alarm centre closing with undelivered notifications")
        for worker in self._workers.values():
            if worker.task is not None:
                worker.task.cancel()
                # wait() neither raises the worker's CancelledError nor swallows our own.
                await asyncio.wait([worker.task])
                worker.task = None
        for worker in self._workers.values():
            try:
                await worker.channel.aclose()
            except Exception as exc:  # noqa: BLE001 - closing must close every channel
                log.warning("%s: closing the channel failed: %s", worker.name, exc)
        self._started = False

    async def __aenter__(self) -> AlarmCenter:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def now(self) -> datetime:
        return (self._clock or current_clock()).now()

    # ---- persistence

    def _changed(self, record_or_id: AlarmRecord | str) -> None:
        if self.on_change is None:
            return
        record = self._records.get(record_or_id) if isinstance(record_or_id, str) else record_or_id
        if record is None:
            return
        try:
            self.on_change(record)
        except Exception:
            log.exception("alarm change listener failed for %s", record.alarm_id)

    def restore(self, record: AlarmRecord) -> None:
        """Put a stored episode back (after a restart): listed again, and if it is still active,
        further occurrences count on it, its acknowledgement keeps them quiet and its quiet period
        runs on. Nothing is notified; an id already known is left alone."""
        if record.alarm_id in self._records:
            return
        self._records[record.alarm_id] = record
        if record.active and record.dedup_key not in self._active:
            self._active[record.dedup_key] = record
        if record.last_notified_at is not None:
            last = self._last_notified.get(record.dedup_key)
            if last is None or record.last_notified_at > last:
                self._last_notified[record.dedup_key] = record.last_notified_at

    # ---- queries

    def get(self, alarm_id: str) -> AlarmRecord:
        """The record of ``alarm_id``; :class:`~metercom.errors.NotifyError` if unknown."""
        try:
            return self._records[alarm_id]
        except KeyError:
            raise NotifyError(f"no alarm {alarm_id!r} (unknown or expired from history)") from None

    def alarms(
        self,
        *,
        state: AlarmState | None = None,
        meter_id: str | None = None,
        kind: AlarmKind | None = None,
    ) -> list[AlarmRecord]:
        """Records matching the filters, most recent occurrence first."""
        found = [
            r
            for r in self._records.values()
            if (state is None or r.state is state)
            and (meter_id is None or r.meter_id == meter_id)
            and (kind is None or r.kind is kind)
        ]
        return sorted(found, key=lambda r: r.last_at, reverse=True)

    def active(self) -> list[AlarmRecord]:
        """Open and acknowledged records."""
        return [r for r in self.alarms() if r.active]

    def deliveries(self) -> Iterator[DeliveryRecord]:
        """Every delivery record still in history."""
        for record in self._records.values():
            yield from record.deliveries

    def pending(self) -> int:
        """Deliveries queued or waiting for a retry."""
        return sum(len(w.heap) + w.busy for w in self._workers.values())

    # ---- raising

    def raise_alarm(self, alarm: Alarm) -> RaiseResult:
        """Record ``alarm`` and notify unless the quiet period or an acknowledgement holds it back."""
        record = self._active.get(alarm.dedup_key)
        new = record is None
        if record is None:
            record = AlarmRecord(uuid.uuid4().hex, alarm, alarm)
            self._store(record)
            self._active[alarm.dedup_key] = record
            event = NotificationEvent.RAISED
        else:
            record.count += 1
            if alarm.at >= record.last.at:
                record.last = alarm
            event = NotificationEvent.REPEATED
        last_sent = self._last_notified.get(alarm.dedup_key)
        quiet = last_sent is not None and alarm.at < last_sent + self.quiet_period
        held = quiet or (not new and record.acknowledged_at is not None)
        if not held:
            self._last_notified[alarm.dedup_key] = alarm.at
            self._notify(record, event, alarm.at)
        self._changed(record)
        return RaiseResult(record, new=new, notified=not held)

    def _store(self, record: AlarmRecord) -> None:
        self._records[record.alarm_id] = record
        if len(self._records) > self.history:
            for alarm_id, old in list(self._records.items()):
                if len(self._records) <= self.history:
                    break
                if not old.active:
                    del self._records[alarm_id]
        if len(self._last_notified) > 2 * self.history:
            newest = max(self._last_notified.values())
            for key, at in list(self._last_notified.items()):
                if at + self.quiet_period < newest:
                    del self._last_notified[key]

    # ---- state changes

    def acknowledge(
        self, alarm_id: str, user: str, at: datetime | None = None, note: str = ""
    ) -> AlarmRecord:
        """Mark an episode as seen by ``user``; further occurrences are counted but not sent."""
        if not user.strip():
            raise NotifyError("acknowledging needs the user's name")
        record = self.get(alarm_id)
        if record.acknowledged_at is None:
            record.acknowledged_by = user
            record.acknowledged_at = at or self.now()
            record.acknowledge_note = note
            log.info("alarm %s (%s) acknowledged by %s", alarm_id, record.dedup_key, user)
            self._changed(record)
        return record

    def clear(
        self, alarm_id: str, at: datetime | None = None, reason: str = "", *, notify: bool = True
    ) -> AlarmRecord:
        """End an episode (idempotent); notifies once if the episode was notified and ``notify``."""
        record = self.get(alarm_id)
        if record.cleared_at is not None:
            return record
        record.cleared_at = at or self.now()
        record.clear_reason = reason
        if self._active.get(record.dedup_key) is record:
            del self._active[record.dedup_key]
        if notify and record.notifications > 0:
            self._notify(record, NotificationEvent.CLEARED, record.cleared_at)
        self._changed(record)
        return record

    def clear_key(
        self, dedup_key: str, at: datetime | None = None, reason: str = "", *, notify: bool = True
    ) -> AlarmRecord | None:
        """Clear the active episode of ``dedup_key``, if there is one."""
        record = self._active.get(dedup_key)
        if record is None:
            return None
        return self.clear(record.alarm_id, at, reason, notify=notify)

    def clear_matching(
        self,
        *,
        kind: AlarmKind,
        meter_id: str | None,
        at: datetime | None = None,
        reason: str = "",
        notify: bool = True,
    ) -> list[AlarmRecord]:
        """Clear every active episode of ``kind`` on ``meter_id``."""
        matching = [r for r in self._active.values() if r.kind is kind and r.meter_id == meter_id]
        return [self.clear(r.alarm_id, at, reason, notify=notify) for r in matching]

    # ---- communication loss

    @staticmethod
    def _comm_key(meter_id: str) -> str:
        return f"{AlarmKind.COMM_LOSS.value}:{meter_id}"

    def is_down(self, meter_id: str) -> bool:
        """True while a comm-loss episode of ``meter_id`` is active."""
        return self._comm_key(meter_id) in self._active

    def link_down(self, meter_id: str, at: datetime, reason: str) -> AlarmRecord | None:
        """The route to ``meter_id`` failed. Returns the new record, or None if it was down already."""
        key = self._comm_key(meter_id)
        if key in self._active:
            self._active[key].count += 1
            self._changed(self._active[key])
            return None
        alarm = Alarm.of(
            AlarmKind.COMM_LOSS,
            meter_id,
            at,
            f"route to this meter is down: {reason}",
            details={"reason": reason},
            dedup_key=key,
        )
        log.warning("meter %s unavailable: %s", meter_id, reason)
        return self.raise_alarm(alarm).record

    def link_up(self, meter_id: str, at: datetime) -> AlarmRecord | None:
        """``meter_id`` answers again. Returns the cleared record, or None if it was not down."""
        record = self._active.get(self._comm_key(meter_id))
        if record is None:
            return None
        log.info("meter %s available again", meter_id)
        return self.clear(record.alarm_id, at, "route to this meter is up again")

    # ---- delivery

    def _notify(self, record: AlarmRecord, event: NotificationEvent, at: datetime) -> None:
        record.notifications += 1
        record.last_notified_at = at
        kind = record.kind
        if event is NotificationEvent.CLEARED and kind is AlarmKind.COMM_LOSS:
            kind = AlarmKind.COMM_RESTORED
        message = record.last.message
        if event is NotificationEvent.CLEARED:
            message = record.clear_reason or f"cleared: {record.last.message}"
        notification = Notification(
            notification_id=f"{record.alarm_id}.{record.notifications}",
            event=event,
            alarm_id=record.alarm_id,
            kind=kind,
            meter_id=record.meter_id,
            severity=record.severity,
            message=message,
            details=record.last.details,
            at=at,
            first_at=record.first_at,
            count=record.count,
            state=record.state,
            dedup_key=record.dedup_key,
        )
        kinds = frozenset({record.kind, kind})
        names: dict[str, None] = {}
        for route in self.routes:
            if route.matches(kinds, record.severity, record.meter_id, event):
                names.update(dict.fromkeys(route.channels))
        created = self.now()
        for name in names:
            delivery = DeliveryRecord(
                delivery_id=f"{notification.notification_id}:{name}",
                channel=name,
                notification_id=notification.notification_id,
                alarm_id=record.alarm_id,
                event=event,
                created_at=created,
            )
            record.deliveries.append(delivery)
            if not self._workers[name].put(delivery, notification, 0.0):
                delivery.status = DeliveryStatus.DROPPED
                delivery.last_error = f"queue of channel {name} full ({self.queue_size})"
                self.dropped += 1
                log.error("%s: queue full, dropped %s", name, delivery.delivery_id)
