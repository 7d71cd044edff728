"""Who talks when: per-line priority queues of conversations, and the schedule timers.

Rule (DESIGN.md section 6): a serial line, RS-485 bus or serial converter carries one
conversation at a time; TCP and UDP lines carry up to ``max_conversations`` at once, and the
whole head-end at most ``max_conversations`` (a global bound); a meter never has two
conversations at once, whatever line it is on. Every conversation is bounded by its line's
``conversation_timeout_s``. Everything waits through asyncio on the running loop's clock, so
tests run on virtual time.

Theory of operation:

* :class:`ConversationScheduler` keeps one :class:`_LineQueue` per configured line: a heap of
  jobs ordered by :class:`Priority` (on-demand before recovery before scheduled), then by
  submission order. A line runs ``max_conversations`` worker tasks (1 on serial kinds). A
  worker waits until its line has a job whose meter is not busy, then takes a global slot, and
  only then pops the best such job, so a command submitted while a schedule is queued is the
  very next conversation on that line.
* A job is ``work(session)``: the scheduler borrows the line's link from the
  :class:`~metercom.service.meters.LinkPool`, builds the meter's session with the session
  factory, awaits ``work``, closes the session and returns the link (closing it after a
  transport failure). The job's future gets the result or the exception; the caller decides
  what an error means (the collector's retry rules live in :mod:`.collector`).
* Reconfiguration (:meth:`ConversationScheduler.configure`) never interrupts a running
  conversation: lines are updated in place (more or fewer workers), queued jobs of meters that
  moved follow them to their new line, jobs of removed meters are cancelled, and removed lines
  stop once their running conversation ends.
* Why not :class:`~metercom.session.bus.BusScheduler` for this: it arbitrates single requests
  round-robin between devices, with no priority classes, and its ``turn()`` is not reentrant,
  so holding it around a whole conversation would deadlock a Modbus session that runs each of
  its requests through the same bus scheduler. Here the unit is the whole conversation and the
  order is by priority; a per-line BusScheduler can still be shared by the Modbus sessions of a
  line for request-level fairness inside a conversation.
* :class:`ScheduleRunner` runs one timer task per enabled schedule: it sleeps until the
  trigger's next fire time on the injected clock (cron in local wall time with the DST rules of
  :mod:`.cron`, intervals in real time) and calls back with the schedule id and the fire time.
  Schedules whose trigger did not change keep their timers across reloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, TypeVar

from metercom.clock import Clock, current_clock
from metercom.errors import InputError, ServiceError, TransportError, TransportTimeout
from metercom.service.config_model import FleetConfig, LineConfig, MeterConfig
from metercom.service.meters import LinkPool, MeterContext, MeterSession, SessionFactory, open_meter_session
from metercom.service.status import LineStatus

__all__ = [
    "ConversationScheduler",
    "MeterRemovedError",
    "Priority",
    "ScheduleRunner",
    "SchedulerStoppedError",
    "sleep_until",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Longest single sleep while waiting for a wall time, so a wall-clock step (NTP) is noticed.
_MAX_SLEEP_S: Final = 300.0
#: Bound on closing a session (a DLMS release) after its conversation.
_CLOSE_TIMEOUT_S: Final = 5.0


class Priority(enum.IntEnum):
    """Order of conversations waiting for the same line; lower runs first."""

    ON_DEMAND = 0  #: commands and reads a user asked for
    RECOVERY = 1  #: retries and gap re-reads
    SCHEDULED = 2  #: the schedules


class SchedulerStoppedError(ServiceError):
    """The scheduler was stopped before the conversation could run."""


class MeterRemovedError(ServiceError):
    """The meter (or its line) left the configuration before its conversation ran."""


@dataclass(eq=False)
class _Job:
    meter_id: str
    priority: Priority
    seq: int
    work: Callable[[MeterSession], Awaitable[Any]]
    label: str
    future: asyncio.Future[Any]

    def __lt__(self, other: _Job) -> bool:
        return (self.priority, self.seq) < (other.priority, other.seq)


@dataclass(eq=False)
class _LineQueue:
    line: LineConfig
    heap: list[_Job] = field(default_factory=list)
    workers: list[asyncio.Task[None]] = field(default_factory=list)
    running: int = 0
    peak_running: int = 0
    conversations: int = 0
    removed: bool = False

    @property
    def limit(self) -> int:
        return 1 if self.line.kind.is_serial else max(1, self.line.max_conversations)


class ConversationScheduler:
    """Runs conversations with meters under the line and global limits; see the module docstring.

    ``env`` is the environment secrets are resolved in (``None``: the process's).
    """

    def __init__(
        self,
        *,
        links: LinkPool | None = None,
        session_factory: SessionFactory | None = None,
        max_conversations: int = 64,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if max_conversations < 1:
            raise InputError(f"max_conversations must be at least 1, got {max_conversations}")
        self.links = links or LinkPool()
        self.session_factory: SessionFactory = session_factory or open_meter_session
        self.max_conversations = max_conversations
        self.env = env
        self._config: FleetConfig | None = None
        self._lines: dict[str, _LineQueue] = {}
        self._busy_meters: set[str] = set()
        self._slots = asyncio.Semaphore(max_conversations)
        # Wakes every waiting worker: set and replaced on each change (no lock needed).
        self._changed = asyncio.Event()
        self._seq = itertools.count()
        self._stopping = False
        self._running_total = 0
        #: The most conversations that ever ran at once, over all lines.
        self.peak_running = 0

    # -- configuration ---------------------------------------------------------------------------

    @property
    def config(self) -> FleetConfig:
        if self._config is None:
            raise ServiceError("the scheduler has no configuration yet")
        return self._config

    def configure(self, config: FleetConfig) -> None:
        """Apply a configuration; running conversations are not interrupted."""
        self._config = config
        wanted = {line.id: line for line in config.lines}
        orphans: list[_Job] = []
        for line_id, old in list(self._lines.items()):
            if line_id not in wanted:
                old.removed = True
                orphans += old.heap
                old.heap = []
                del self._lines[line_id]
        for line in config.lines:
            existing = self._lines.get(line.id)
            if existing is None:
                self._lines[line.id] = _LineQueue(line)
            else:
                existing.line = line
        # Re-home queued jobs: a meter may have moved to another line or left.
        for queue in self._lines.values():
            keep = [job for job in queue.heap if self._line_of(job.meter_id) == queue.line.id]
            orphans += [job for job in queue.heap if job not in keep]
            queue.heap = keep
            heapq.heapify(queue.heap)
        for job in orphans:
            target = self._line_of(job.meter_id)
            if target is not None and target in self._lines:
                heapq.heappush(self._lines[target].heap, job)
            elif not job.future.done():
                job.future.set_exception(
                    MeterRemovedError(f"meter {job.meter_id} left the configuration before {job.label}")
                )
        for queue in self._lines.values():
            self._start_workers(queue)
        self._notify()

    def _line_of(self, meter_id: str) -> str | None:
        try:
            return self.config.meter(meter_id).line
        except KeyError:
            return None

    def _start_workers(self, queue: _LineQueue) -> None:
        queue.workers = [w for w in queue.workers if not w.done()]
        while len(queue.workers) < queue.limit and not self._stopping:
            index = len(queue.workers)
            queue.workers.append(
                asyncio.create_task(self._worker(queue, index), name=f"line {queue.line.id} worker {index}")
            )

    # -- submitting ------------------------------------------------------------------------------

    def enqueue(
        self,
        meter_id: str,
        work: Callable[[MeterSession], Awaitable[T]],
        *,
        priority: Priority = Priority.ON_DEMAND,
        label: str = "conversation",
    ) -> asyncio.Future[T]:
        """Queue ``work`` for a conversation with ``meter_id``; the future gets its outcome."""
        if self._stopping:
            raise SchedulerStoppedError(f"the head-end is stopping; {label} for {meter_id} was not queued")
        line_id = self._line_of(meter_id)
        if line_id is None:
            raise MeterRemovedError(f"unknown meter {meter_id!r}")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        job = _Job(meter_id, priority, next(self._seq), work, label, future)
        heapq.heappush(self._lines[line_id].heap, job)
        self._notify()
        return future

    async def submit(
        self,
        meter_id: str,
        work: Callable[[MeterSession], Awaitable[T]],
        *,
        priority: Priority = Priority.ON_DEMAND,
        label: str = "conversation",
    ) -> T:
        """Queue ``work`` and wait for its outcome (cancelling the wait drops a queued job)."""
        future = self.enqueue(meter_id, work, priority=priority, label=label)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            future.cancel()
            raise

    def promote(self, meter_id: str, priority: Priority) -> int:
        """Raise queued jobs of a meter to ``priority`` (an on-demand read joining a queued
        scheduled one); returns how many were raised."""
        raised = 0
        for queue in self._lines.values():
            for job in queue.heap:
                if job.meter_id == meter_id and job.priority > priority and not job.future.done():
                    job.priority = priority
                    raised += 1
            if raised:
                heapq.heapify(queue.heap)
        if raised:
            self._notify()
        return raised

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- running ---------------------------------------------------------------------------------

    def _runnable(self, queue: _LineQueue) -> _Job | None:
        best: _Job | None = None
        for job in queue.heap:
            if job.future.done() or job.meter_id in self._busy_meters:
                continue
            if best is None or job < best:
                best = job
        return best

    def _drop_done(self, queue: _LineQueue) -> None:
        if any(job.future.done() for job in queue.heap):
            queue.heap = [job for job in queue.heap if not job.future.done()]
            heapq.heapify(queue.heap)

    def _retired(self, queue: _LineQueue, index: int) -> bool:
        return self._stopping or queue.removed or index >= queue.limit

    async def _worker(self, queue: _LineQueue, index: int) -> None:
        while True:
            while not self._retired(queue, index) and self._runnable(queue) is None:
                await self._changed.wait()
            if self._retired(queue, index):
                return
            async with self._slots:
                self._drop_done(queue)
                job = self._runnable(queue)
                if job is None:
                    continue
                queue.heap.remove(job)
                heapq.heapify(queue.heap)
                self._busy_meters.add(job.meter_id)
                queue.running += 1
                queue.conversations += 1
                queue.peak_running = max(queue.peak_running, queue.running)
                self._running_total += 1
                self.peak_running = max(self.peak_running, self._running_total)
                try:
                    await self._run(queue.line, job)
                finally:
                    queue.running -= 1
                    self._running_total -= 1
                    self._busy_meters.discard(job.meter_id)
                    self._notify()

    async def _run(self, line: LineConfig, job: _Job) -> None:
        try:
            meter = self.config.meter(job.meter_id)
        except KeyError:
            job.future.set_exception(MeterRemovedError(f"meter {job.meter_id} left the configuration"))
            return
        try:
            result = await self._converse(line, meter, job)
        except asyncio.CancelledError:
            if not job.future.done():
                job.future.set_exception(
                    SchedulerStoppedError(f"{job.label} with {meter.id} was cancelled by a shutdown")
                )
            raise
        except BaseException as exc:
            if not job.future.done():
                job.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            if not job.future.done():
                job.future.set_result(result)

    async def _converse(self, line: LineConfig, meter: MeterConfig, job: _Job) -> Any:
        healthy = False
        transport = None
        try:
            async with asyncio.timeout(line.conversation_timeout_s):
                transport = await self.links.acquire(line, meter)
                context = MeterContext(
                    meter,
                    line,
                    self.config,
                    transport,
                    env=self.env,
                    link_idle_since_s=self.links.idle_since_s(line.id),
                )
                session = await self.session_factory(context)
                try:
                    result = await job.work(session)
                finally:
                    with contextlib.suppress(Exception):
                        async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                            await session.close()
            healthy = True
            return result
        except TimeoutError as exc:
            raise TransportTimeout(
                f"{job.label} with {meter.id} on line {line.id} did not end within "
                f"conversation_timeout_s={line.conversation_timeout_s:g} s"
            ) from exc
        except TransportError:
            raise
        except Exception:
            healthy = True  # the link carried an answer; the meter or our request was at fault
            raise
        finally:
            if transport is not None:
                await self.links.release(line, transport, healthy=healthy)

    # -- observation and shutdown ----------------------------------------------------------------

    def line_status(self) -> list[LineStatus]:
        return [
            LineStatus(
                line_id=q.line.id,
                kind=q.line.kind.value,
                max_conversations=q.limit,
                running=q.running,
                queued=sum(1 for job in q.heap if not job.future.done()),
                peak_running=q.peak_running,
                conversations=q.conversations,
            )
            for q in self._lines.values()
        ]

    @property
    def idle(self) -> bool:
        """Nothing running and nothing queued."""
        return self._running_total == 0 and not any(
            not job.future.done() for q in self._lines.values() for job in q.heap
        )

    async def stop(self, *, timeout_s: float = 10.0) -> None:
        """Cancel queued jobs, let running conversations end for up to ``timeout_s``, then cancel them."""
        self._stopping = True
        for queue in self._lines.values():
            for job in queue.heap:
                if not job.future.done():
                    job.future.set_exception(
                        SchedulerStoppedError(f"{job.label} with {job.meter_id}: stopped")
                    )
            queue.heap.clear()
        self._notify()
        workers = [w for q in self._lines.values() for w in q.workers if not w.done()]
        if workers:
            _, pending = await asyncio.wait(workers, timeout=timeout_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=_CLOSE_TIMEOUT_S)
        await self.links.close()


# -- schedules ---------------------------------------------------------------------------------------


async def sleep_until(when: datetime, clock: Clock | None = None) -> None:
    """Sleep until the wall time ``when`` on ``clock`` (default: the running loop's clock)."""
    clock = clock or current_clock()
    while True:
        remaining_s = (when - clock.now()).total_seconds()
        if remaining_s <= 0:
            return
        await asyncio.sleep(min(remaining_s, _MAX_SLEEP_S))


#: Called with the schedule id and the fire time (UTC).
FireCallback = Callable[[str, datetime], None]


class ScheduleRunner:
    """One timer task per enabled schedule; see the module docstring."""

    def __init__(self, on_fire: FireCallback, *, clock: Clock | None = None) -> None:
        self._on_fire = on_fire
        self._clock = clock
        self._tasks: dict[str, tuple[object, asyncio.Task[None]]] = {}
        self._next: dict[str, datetime] = {}

    @property
    def clock(self) -> Clock:
        return self._clock or current_clock()

    def configure(self, config: FleetConfig) -> None:
        wanted = {s.id: s for s in config.schedules if s.enabled}
        for schedule_id, (trigger, task) in list(self._tasks.items()):
            schedule = wanted.get(schedule_id)
            if schedule is None or schedule.trigger != trigger:
                task.cancel()
                del self._tasks[schedule_id]
                self._next.pop(schedule_id, None)
        for schedule in wanted.values():
            if schedule.id not in self._tasks:
                task = asyncio.create_task(
                    self._run(schedule.id, schedule.trigger), name=f"schedule {schedule.id}"
                )
                self._tasks[schedule.id] = (schedule.trigger, task)

    def next_fire(self, schedule_id: str) -> datetime | None:
        """When the schedule fires next (``None``: not running)."""
        return self._next.get(schedule_id)

    async def _run(self, schedule_id: str, trigger: Any) -> None:
        after = self.clock.now()
        while True:
            fire: datetime = trigger.next_fire(after)
            self._next[schedule_id] = fire
            await sleep_until(fire, self.clock)
            try:
                self._on_fire(schedule_id, fire)
            except Exception:
                log.exception("schedule %s: firing at %s failed", schedule_id, fire.isoformat())
            after = fire

    async def stop(self) -> None:
        tasks = [task for _, task in self._tasks.values()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=_CLOSE_TIMEOUT_S)
        self._tasks.clear()
        self._next.clear()
