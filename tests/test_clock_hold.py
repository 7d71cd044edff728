"""VirtualClock.hold: virtual time stands still while real work runs in another thread."""

from __future__ import annotations

import asyncio
import hashlib
import threading

from metercom.clock import VirtualClock

BLOB = bytes(32 << 20)


def test_holds_are_counted_and_each_released_once() -> None:
    clock = VirtualClock()
    first, second = clock.hold(), clock.hold()
    assert clock.held
    first()
    first()  # a second release of the same hold does nothing
    assert clock.held
    second()
    assert not clock.held


async def test_a_held_clock_waits_for_the_thread_instead_of_jumping(vclock: VirtualClock) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    fired: list[float] = []
    loop.call_later(1.0, lambda: fired.append(loop.time()))
    result: asyncio.Future[bytes] = loop.create_future()
    release = vclock.hold()

    def work() -> None:
        digest = hashlib.sha256(BLOB).digest()  # real time (without the GIL) the loop cannot see
        release()
        loop.call_soon_threadsafe(result.set_result, digest)

    thread = threading.Thread(target=work)
    thread.start()
    assert await result == hashlib.sha256(BLOB).digest()
    thread.join()
    assert loop.time() == start  # unheld, the loop would have jumped to the timer and run it
    assert fired == []
    await asyncio.sleep(1.0)
    assert fired == [start + 1.0]
