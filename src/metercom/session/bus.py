"""One conversation at a time on a shared physical link, fair to every device on it.

Rule: a serial line, an RS-485 bus or a power-line modem carries one request/response
conversation at a time (DESIGN.md section 6), and no device on it may starve the others: a
dead or slow device costs at most its bounded timeouts per turn, never the bus (the failure
pymodbus #2432 and mbusd #88 describe: retries of one missing device block every other one).
:class:`BusScheduler` enforces this for any protocol; it knows nothing about Modbus, and the
head-end uses the same class for IEC 62056-21 and DLMS links.

Theory of operation:

* Every conversation runs under :meth:`BusScheduler.run` with a *key* (the device: a Modbus
  unit, a meter id). Waiting requests queue per key, and the bus is granted **round-robin over
  keys**: after key K has had a turn, the next turn goes to the next key (in order of first
  appearance) that has a request waiting. With N devices waiting, each gets every N-th turn
  however many requests any one of them has queued.
* One **attempt** is one turn. It runs under a per-attempt timeout (``timeout_s``; a
  :class:`~metercom.errors.TransportTimeout` when it expires). A failure of the classes in
  ``retry_on`` (transport errors and corrupt replies by default; a device's refusal, a
  :class:`~metercom.errors.DeviceRejectedError`, is an answer and is never retried) gives up
  the bus, and the retry queues again **at the front of its own key's queue**, so other keys'
  waiting requests go first. At most ``retries`` retries, then the last error is raised.
* ``gap_after_failure_s`` keeps the bus quiet for a while after a failed attempt, so that a
  late reply dies out before the next device is addressed.
* Time spent waiting for the bus does not count against a request's timeout. Cancelling a
  waiting or running request frees its place or the bus; the scheduler never deadlocks.
* :attr:`BusScheduler.stats` counts per key (attempts, failures, timeouts, time on the bus,
  longest wait) so a test or the head-end can show that nobody starved.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

from metercom.errors import InputError, RemoteProtocolError, TransportError, TransportTimeout

__all__ = ["BusScheduler", "KeyStats"]

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class KeyStats:
    """What one key (device) got from the bus."""

    #: Calls to :meth:`BusScheduler.run`.
    requests: int = 0
    #: Turns taken (first attempts and retries).
    attempts: int = 0
    #: Requests that succeeded.
    successes: int = 0
    #: Requests that failed after their last attempt (or with an error not retried).
    failures: int = 0
    #: Attempts that ran into the per-attempt timeout.
    timeouts: int = 0
    #: Seconds this key held the bus.
    busy_s: float = 0.0
    #: Longest time one of its requests waited for a turn.
    max_wait_s: float = 0.0
    #: Total time its requests waited for turns.
    wait_s: float = 0.0
    #: The last error raised to a caller.
    last_error: str = ""


class BusScheduler:
    """Grants one physical link to one conversation at a time; see the module docstring."""

    def __init__(
        self,
        name: str = "bus",
        *,
        timeout_s: float = 1.0,
        retries: int = 2,
        retry_on: tuple[type[BaseException], ...] = (TransportError, RemoteProtocolError),
        gap_after_failure_s: float = 0.0,
    ) -> None:
        if timeout_s <= 0:
            raise InputError(f"timeout_s must be positive, got {timeout_s}")
        if retries < 0:
            raise InputError(f"retries must not be negative, got {retries}")
        if gap_after_failure_s < 0:
            raise InputError(f"gap_after_failure_s must not be negative, got {gap_after_failure_s}")
        self.name = name
        self.timeout_s = timeout_s
        self.retries = retries
        self.retry_on = retry_on
        self.gap_after_failure_s = gap_after_failure_s
        self.stats: dict[Hashable, KeyStats] = {}
        self._queues: dict[Hashable, deque[asyncio.Future[None]]] = {}
        self._waiting = 0
        self._busy = False
        self._last_key: Hashable | None = None

    def __repr__(self) -> str:
        return f"<BusScheduler {self.name} busy={self._busy} waiting={self._waiting}>"

    @property
    def busy(self) -> bool:
        """True while a conversation holds the bus."""
        return self._busy

    @property
    def waiting(self) -> int:
        """Requests queued for a turn."""
        return self._waiting

    def _stats(self, key: Hashable) -> KeyStats:
        stats = self.stats.get(key)
        if stats is None:
            stats = self.stats[key] = KeyStats()
        return stats

    # -- granting ------------------------------------------------------------------------------

    async def _acquire(self, key: Hashable, *, front: bool = False) -> None:
        if not self._busy and not self._waiting:
            self._busy = True
            self._last_key = key
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._queues.setdefault(key, deque())
        if front:
            queue.appendleft(future)
        else:
            queue.append(future)
        self._waiting += 1
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release()  # the turn was granted just before the cancellation: pass it on
            elif future in queue:
                queue.remove(future)
                self._waiting -= 1
            raise

    def _release(self) -> None:
        keys = list(self._queues)
        start = keys.index(self._last_key) + 1 if self._last_key in self._queues else 0
        for i in range(len(keys)):
            key = keys[(start + i) % len(keys)]
            queue = self._queues[key]
            while queue:
                future = queue.popleft()
                self._waiting -= 1
                if not future.done():
                    self._last_key = key
                    future.set_result(None)
                    return
        self._busy = False

    @asynccontextmanager
    async def turn(self, key: Hashable) -> AsyncIterator[None]:
        """Hold the bus for a multi-step conversation (no timeout or retry; use :meth:`run` for that)."""
        loop = asyncio.get_running_loop()
        stats = self._stats(key)
        queued_at = loop.time()
        await self._acquire(key)
        waited_s = loop.time() - queued_at
        stats.wait_s += waited_s
        stats.max_wait_s = max(stats.max_wait_s, waited_s)
        started = loop.time()
        try:
            yield
        finally:
            stats.busy_s += loop.time() - started
            self._release()

    # -- running -------------------------------------------------------------------------------

    async def run(
        self,
        key: Hashable,
        conversation: Callable[[], Awaitable[T]],
        *,
        timeout_s: float | None = None,
        retries: int | None = None,
        what: str = "request",
    ) -> T:
        """Run ``conversation()`` on the bus for ``key``, with timeout and bounded retries.

        ``what`` names the request in error messages (``"read input 0x0000+10"``).
        """
        loop = asyncio.get_running_loop()
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        retries = self.retries if retries is None else retries
        stats = self._stats(key)
        stats.requests += 1
        attempt = 0
        while True:
            attempt += 1
            queued_at = loop.time()
            await self._acquire(key, front=attempt > 1)
            waited_s = loop.time() - queued_at
            stats.wait_s += waited_s
            stats.max_wait_s = max(stats.max_wait_s, waited_s)
            stats.attempts += 1
            started = loop.time()
            failed: BaseException | None = None
            try:
                try:
                    async with asyncio.timeout(timeout_s):
                        result = await conversation()
                except TimeoutError:
                    stats.timeouts += 1
                    failed = TransportTimeout(
                        f"{self.name}: {key}: {what}: no complete answer within {timeout_s:g} s "
                        f"(attempt {attempt} of {retries + 1})"
                    )
                except TransportTimeout as exc:
                    stats.timeouts += 1
                    failed = exc
                except self.retry_on as exc:
                    failed = exc
                except BaseException as exc:
                    stats.failures += 1
                    stats.last_error = f"{type(exc).__name__}: {exc}"
                    raise
                else:
                    stats.successes += 1
                    return result
                if self.gap_after_failure_s:
                    await asyncio.sleep(self.gap_after_failure_s)
            finally:
                stats.busy_s += loop.time() - started
                self._release()
            log.debug("%s: %s: %s failed (attempt %d): %s", self.name, key, what, attempt, failed)
            if attempt > retries:
                stats.failures += 1
                stats.last_error = f"{type(failed).__name__}: {failed}"
                raise failed
