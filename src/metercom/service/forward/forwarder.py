"""The forwarder: one task per sink moving batches from the store's outbox upstream.

Rule: a batch is marked confirmed in the store only after its sink's :meth:`~.Sink.send`
returned (the central system confirmed it at application level), never before; until then the
store keeps handing out the same batch (same id, same readings), so every failure, timeout,
lost confirmation, crash or ``kill -9`` ends in a resend the receiver recognises by its id.
Nothing is lost (the outbox entry exists from the transaction that stored the reading until
the confirmation) and nothing is stored twice (the receiver stores each batch id once).

Theory of operation, per sink: claim a batch (:meth:`Store.claim_outbox_batch`), send it under
``confirm_timeout_s``, confirm it and claim the next one in the same transaction
(:meth:`Store.confirm_and_claim_outbox_batch`: one commit per batch while a backlog drains),
pace to ``max_rate_per_s``, repeat; with nothing pending, wait ``interval_s`` or until :meth:`wake`.
A failed send backs off exponentially (``retry_min_s`` .. ``retry_max_s``, +-20 % jitter) and
then resends the same batch; the sink is logged as unavailable once and as back once. Sinks
are independent: one sink being down never holds another back. A separate task drops pending
entries older than ``keep_unsent`` (default 90 days, audited). All waiting uses asyncio timers,
so the forwarder runs unchanged on a :class:`~metercom.clock.VirtualClock`.

Backlog metrics (per sink, as data; a Prometheus exporter can read :meth:`status`): pending
readings, in flight, age of the oldest pending reading, confirmed and expired totals, batches,
resends, failures, the last error, and the rate of the last minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import TracebackType
from typing import Final, Self

from metercom.clock import Clock, current_clock
from metercom.errors import InputError, MetercomError, UploadError
from metercom.service.forward.sink import Sink, Upstream
from metercom.service.store import OutboxBatch, Store

__all__ = ["DEFAULT_KEEP_UNSENT", "Forwarder", "SinkStatus"]

log = logging.getLogger(__name__)

#: How long unsent readings are kept (D2000 SGCom's figure, field notes).
DEFAULT_KEEP_UNSENT: Final = timedelta(days=90)
_RATE_WINDOW_S: Final = 60.0


@dataclass(slots=True)
class _Runtime:
    batches: int = 0
    readings: int = 0
    resends: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    last_error: str | None = None
    last_success_mono: float | None = None
    recent: deque[tuple[float, int]] = field(default_factory=deque)


@dataclass(frozen=True, slots=True)
class SinkStatus:
    """Backlog and health of one sink (see the module docstring)."""

    sink: str
    pending: int
    in_flight: int
    oldest_age_s: float
    oldest_enqueued_at: datetime | None
    confirmed_total: int
    expired_total: int
    batches: int
    readings: int
    resends: int
    failures: int
    consecutive_failures: int
    last_error: str | None
    last_confirmed_at: datetime | None
    rate_per_s: float

    @property
    def available(self) -> bool:
        return self.consecutive_failures == 0


class Forwarder:
    """Feeds each :class:`Upstream` from ``store``'s outbox (see the module docstring).

    Use ``async with Forwarder(store, upstreams):`` or :meth:`start` / :meth:`stop`. Sinks are
    registered in the store at start; register them before collection starts (call
    :meth:`register`) so no reading stored meanwhile misses the outbox.
    """

    def __init__(
        self,
        store: Store,
        upstreams: Sequence[Upstream],
        *,
        keep_unsent: timedelta = DEFAULT_KEEP_UNSENT,
        expire_every: timedelta = timedelta(hours=1),
        clock: Clock | None = None,
        seed: int | None = None,
    ) -> None:
        names = [u.sink.name for u in upstreams]
        if len(set(names)) != len(names):
            raise InputError(f"sink names must be unique, got {names}")
        if keep_unsent <= timedelta(0) or expire_every <= timedelta(0):
            raise InputError("keep_unsent and expire_every must be positive")
        self._store = store
        self._upstreams = tuple(upstreams)
        self._keep_unsent = keep_unsent
        self._expire_every = expire_every
        self._clock = clock
        self._rng = random.Random(seed)
        self._runtime = {name: _Runtime() for name in names}
        self._wake = {name: asyncio.Event() for name in names}
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def sinks(self) -> tuple[str, ...]:
        return tuple(u.sink.name for u in self._upstreams)

    def _now(self) -> datetime:
        return (self._clock or current_clock()).now()

    async def register(self) -> list[str]:
        """Register the sinks in the store (idempotent); returns the newly registered names."""
        return await self._store.register_outbox_sinks(self.sinks)

    async def start(self) -> None:
        """Register the sinks and start one task per sink plus the expiry task."""
        if self._tasks:
            return
        await self.register()
        for up in self._upstreams:
            self._tasks.append(asyncio.create_task(self._run_sink(up), name=f"forward:{up.sink.name}"))
        self._tasks.append(asyncio.create_task(self._run_expiry(), name="forward:expiry"))

    async def stop(self) -> None:
        """Stop the tasks (a batch in flight stays unconfirmed and is resent next time) and close
        the sinks."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for up in self._upstreams:
            try:
                await up.sink.close()
            except MetercomError as exc:
                log.warning("closing sink %s: %s", up.sink.name, exc)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def wake(self) -> None:
        """Look at the outbox now (e.g. right after readings were stored)."""
        for event in self._wake.values():
            event.set()

    async def status(self) -> list[SinkStatus]:
        """Backlog size and age and the health of every sink."""
        backlog = {b.sink: b for b in await self._store.outbox_backlog()}
        now = self._now()
        mono = asyncio.get_running_loop().time()
        out: list[SinkStatus] = []
        for name in self.sinks:
            rt = self._runtime[name]
            b = backlog.get(name)
            while rt.recent and rt.recent[0][0] < mono - _RATE_WINDOW_S:
                rt.recent.popleft()
            out.append(
                SinkStatus(
                    sink=name,
                    pending=b.pending if b else 0,
                    in_flight=b.in_flight if b else 0,
                    oldest_age_s=b.age_s(now) if b else 0.0,
                    oldest_enqueued_at=b.oldest_enqueued_at if b else None,
                    confirmed_total=b.confirmed_total if b else 0,
                    expired_total=b.expired_total if b else 0,
                    batches=rt.batches,
                    readings=rt.readings,
                    resends=rt.resends,
                    failures=rt.failures,
                    consecutive_failures=rt.consecutive_failures,
                    last_error=rt.last_error,
                    last_confirmed_at=b.last_confirmed_at if b else None,
                    rate_per_s=sum(n for _, n in rt.recent) / _RATE_WINDOW_S,
                )
            )
        return out

    async def wait_drained(self, *, poll_s: float = 1.0) -> None:
        """Return once no sink has anything pending (for tests, demos and a clean shutdown)."""
        while True:
            if all(b.pending == 0 for b in await self._store.outbox_backlog()):
                return
            self.wake()
            await asyncio.sleep(poll_s)

    # -- the per-sink loop ---------------------------------------------------------------------

    async def _wait(self, name: str, seconds: float) -> None:
        event = self._wake[name]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await event.wait()
        event.clear()

    def _backoff(self, delay: float) -> float:
        return delay * (0.8 + 0.4 * self._rng.random())

    async def _run_sink(self, up: Upstream) -> None:
        sink, policy = up.sink, up.policy
        name = sink.name
        rt = self._runtime[name]
        loop = asyncio.get_running_loop()
        delay = policy.retry_min_s
        next_send = loop.time()
        retry: OutboxBatch | None = None
        claimed: OutboxBatch | None = None  # claimed with the last confirmation
        while True:
            try:
                if retry is not None:  # what the store would hand out again, without reading it
                    batch: OutboxBatch | None = replace(retry, resend=True)
                elif claimed is not None:
                    batch = claimed
                else:
                    batch = await self._store.claim_outbox_batch(
                        name, limit=policy.batch_size, live_share=policy.live_share
                    )
                retry = claimed = None
            except MetercomError as exc:
                log.warning("forwarder %s: cannot read the outbox: %s", name, exc)
                await asyncio.sleep(self._backoff(delay))
                delay = min(delay * 2, policy.retry_max_s)
                continue
            if batch is None:
                await self._wait(name, policy.interval_s)
                continue
            if batch.resend:
                rt.resends += 1
            wait = next_send - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                async with asyncio.timeout(policy.confirm_timeout_s):
                    await sink.send(batch)
            except (UploadError, TimeoutError) as exc:
                reason = str(exc) or f"no confirmation within {policy.confirm_timeout_s:g} s"
                self._failed(sink, rt, reason)
                retry = batch
                await asyncio.sleep(self._backoff(delay))
                delay = min(delay * 2, policy.retry_max_s)
                continue
            except Exception as exc:  # a sink bug must not end forwarding for months
                log.exception("forwarder %s: unexpected error sending batch %s", name, batch.batch_id)
                self._failed(sink, rt, f"{type(exc).__name__}: {exc}")
                retry = batch
                await asyncio.sleep(self._backoff(delay))
                delay = min(delay * 2, policy.retry_max_s)
                continue
            try:
                _, claimed = await self._store.confirm_and_claim_outbox_batch(
                    name, batch.batch_id, limit=policy.batch_size, live_share=policy.live_share
                )
            except MetercomError as exc:
                # The receiver has the batch; it is resent (and recognised) once the store works.
                log.warning("forwarder %s: cannot record confirmation of %s: %s", name, batch.batch_id, exc)
                await asyncio.sleep(self._backoff(delay))
                continue
            if rt.consecutive_failures:
                log.warning("sink %s is available again after %d failures", name, rt.consecutive_failures)
            rt.consecutive_failures = 0
            rt.batches += 1
            rt.readings += len(batch)
            now = loop.time()
            rt.last_success_mono = now
            rt.recent.append((now, len(batch)))
            delay = policy.retry_min_s
            if policy.max_rate_per_s is not None:
                next_send = max(next_send, now - 1.0) + len(batch) / policy.max_rate_per_s

    def _failed(self, sink: Sink, rt: _Runtime, reason: str) -> None:
        rt.failures += 1
        rt.consecutive_failures += 1
        rt.last_error = reason
        if rt.consecutive_failures == 1:
            log.warning("sink %s is unavailable, keeping readings until it confirms: %s", sink.name, reason)
        else:
            log.debug("sink %s still unavailable (%d): %s", sink.name, rt.consecutive_failures, reason)

    def _expiry_plan(self) -> list[tuple[timedelta, list[str] | None]]:
        """(retention, sinks) passes: each sink with its own retention, then every registered
        sink (also those no longer configured) with the longest retention in force, so nothing
        a configured sink still keeps is dropped and a forgotten sink cannot grow forever."""
        groups: dict[timedelta, list[str]] = {}
        for up in self._upstreams:
            groups.setdefault(up.keep_unsent or self._keep_unsent, []).append(up.sink.name)
        plan: list[tuple[timedelta, list[str] | None]] = list(groups.items())
        plan.append((max([self._keep_unsent, *groups]), None))
        return plan

    async def expire_now(self) -> dict[str, int]:
        """Drop pending entries older than their sink's retention now; returns drops per sink."""
        total: dict[str, int] = {}
        for keep, sinks in self._expiry_plan():
            dropped = await self._store.expire_outbox(keep, sinks=sinks)
            for name, n in dropped.items():
                total[name] = total.get(name, 0) + n
                log.error("sink %s: dropped %d readings never confirmed within %s", name, n, keep)
        return total

    async def _run_expiry(self) -> None:
        while True:
            try:
                await self.expire_now()
            except MetercomError as exc:
                log.warning("forwarder: cannot expire old outbox entries: %s", exc)
            await asyncio.sleep(self._expire_every.total_seconds())
