"""Clocks: the real one, and a virtual one that asyncio runs on.

Everything in metercom that waits does so through asyncio (``asyncio.sleep``, ``wait_for``,
``loop.call_later``) and reads wall time through a :class:`Clock`. Codec code never reads a
clock at all; its callers pass ``now`` in.

:class:`VirtualClock` makes asyncio itself run on virtual time: its event loop reports the
virtual monotonic time from ``loop.time()``, and whenever the loop has nothing ready to run and
would block until its next timer, the virtual clock jumps straight to that timer instead of
waiting. A simulated week of 15-minute readings therefore runs in as long as the CPU work takes,
and the order of events is exactly the order real time would give.

Real I/O still works under virtual time: before each jump the loop polls its sockets without
blocking. Data written to a loopback socket by the same process is readable at once, so
in-process client/server pairs over real TCP behave. A peer in another thread or process may
need real time to answer; give such tests ``real_grace_s`` (the loop then waits that long for
real I/O before each jump) or run them on the real clock.

Work the loop hands to a thread of its own process (the store's database transactions) takes
:meth:`VirtualClock.hold` for as long as it runs: virtual time stands still until it is done,
so its real duration (a SQLite file or a PostgreSQL server) never moves the clock.
"""

from __future__ import annotations

import asyncio
import math
import selectors
import threading
import time
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar, runtime_checkable

__all__ = ["Clock", "SystemClock", "VirtualClock", "current_clock"]

T = TypeVar("T")

#: Where a :class:`VirtualClock` starts unless told otherwise.
DEFAULT_VIRTUAL_START = datetime(2026, 1, 1, tzinfo=UTC)


@runtime_checkable
class Clock(Protocol):
    """Time as metercom reads it."""

    def monotonic(self) -> float:
        """Seconds on a monotonic scale; equal to the running event loop's ``loop.time()``."""

    def now(self) -> datetime:
        """The current wall time, timezone-aware (UTC)."""


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


class VirtualClock:
    """A clock that moves only when told to, or when its event loop would otherwise idle.

    ``start`` is the wall time at monotonic time 0. Use :meth:`run` (or :meth:`new_event_loop`
    with ``asyncio.Runner``) to run coroutines on it.
    """

    def __init__(self, start: datetime = DEFAULT_VIRTUAL_START, *, real_grace_s: float = 0.0) -> None:
        if start.tzinfo is None:
            raise ValueError("VirtualClock start must be timezone-aware")
        if real_grace_s < 0:
            raise ValueError("real_grace_s must not be negative")
        self._start = start.astimezone(UTC)
        self._t = 0.0
        self.real_grace_s = real_grace_s
        self._holds = 0
        self._holds_lock = threading.Lock()

    def monotonic(self) -> float:
        return self._t

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._t)

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (never backward)."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go back ({seconds} s)")
        self._t += seconds

    def advance_to(self, monotonic: float) -> None:
        """Move the clock forward to the monotonic time ``monotonic`` (no-op if already past)."""
        self._t = max(self._t, monotonic)

    def hold(self) -> Callable[[], None]:
        """Keep virtual time still until the returned release is called (from any thread; a
        second call does nothing): for real work in another thread whose end the loop must see
        before it jumps to its next timer. Real I/O is served meanwhile."""
        with self._holds_lock:
            self._holds += 1
        released = False

        def release() -> None:
            nonlocal released
            with self._holds_lock:
                if not released:
                    released = True
                    self._holds -= 1

        return release

    @property
    def held(self) -> bool:
        """True while some :meth:`hold` is not yet released."""
        return self._holds > 0

    def _jump(self, seconds: float) -> None:
        # Float sums can land a hair short of the timer's due time; always move by at least one
        # unit in the last place so the loop never spins on a sub-resolution remainder.
        self._t = max(self._t + seconds, math.nextafter(self._t, math.inf))

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        """An event loop whose timers run on this clock."""
        return _VirtualTimeLoop(self)

    def run(self, main: Coroutine[Any, Any, T]) -> T:
        """Run ``main`` to completion on a fresh event loop driven by this clock."""
        with asyncio.Runner(loop_factory=self.new_event_loop) as runner:
            return runner.run(main)

    def __repr__(self) -> str:
        return f"VirtualClock(now={self.now().isoformat()}, monotonic={self._t:.6f})"


#: How long, in real time, a held clock's loop waits for I/O before it looks again.
_HOLD_POLL_S = 0.05


class _VirtualSelector(selectors.BaseSelector):
    """Wraps the default selector; turns a blocking wait for a timer into a clock jump."""

    def __init__(self, clock: VirtualClock) -> None:
        self._clock = clock
        self._inner = selectors.DefaultSelector()

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            # No timer is pending: only real I/O (or another thread) can wake the loop.
            return self._inner.select(None)
        if timeout <= 0:
            return self._inner.select(0)
        if self._clock.held:
            # Real work in flight: wait for it in real time (its end wakes the loop), never jump.
            return self._inner.select(_HOLD_POLL_S)
        events = self._inner.select(min(timeout, self._clock.real_grace_s))
        if not events:
            self._clock._jump(timeout)
        return events

    def close(self) -> None:
        self._inner.close()

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.get_key(fileobj)

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._inner.get_map()


class _VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self, clock: VirtualClock) -> None:
        self.metercom_clock = clock
        super().__init__(_VirtualSelector(clock))
        # asyncio runs a timer when its due time is below loop.time() + _clock_resolution. The
        # monotonic clock's 1 ns resolution is below one float ulp once virtual time passes a few
        # months, which would leave a due timer waiting forever; 1 us is above the ulp for 30 years.
        self._clock_resolution = 1e-6

    def time(self) -> float:
        return self.metercom_clock.monotonic()


_SYSTEM = SystemClock()


def current_clock() -> Clock:
    """The clock of the running event loop: its :class:`VirtualClock`, else the system clock."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return _SYSTEM
    clock: Clock = getattr(loop, "metercom_clock", _SYSTEM)
    return clock


def run_with(clock: Clock | None, main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``main()`` on ``clock`` (a :class:`VirtualClock`) or on the real clock."""
    if isinstance(clock, VirtualClock):
        return clock.run(main())
    return asyncio.run(main())
