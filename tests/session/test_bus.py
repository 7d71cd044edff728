"""BusScheduler: one conversation at a time, round-robin between keys, bounded timeouts and retries."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from metercom.clock import VirtualClock
from metercom.errors import DeviceRejectedError, FrameError, InputError, TransportTimeout
from metercom.session.bus import BusScheduler


class Recorder:
    """Conversations that log (key, start, end) and check that they never overlap."""

    def __init__(self) -> None:
        self.log: list[tuple[str, float, float]] = []
        self.active = 0

    def make(self, key: str, duration_s: float = 0.01, *, fail: BaseException | None = None):
        async def conversation() -> str:
            loop = asyncio.get_running_loop()
            self.active += 1
            assert self.active == 1, "two conversations on the bus at once"
            start = loop.time()
            try:
                await asyncio.sleep(duration_s)
                if fail is not None:
                    raise fail
                return key
            finally:
                self.active -= 1
                self.log.append((key, start, loop.time()))

        return conversation


async def test_round_robin_between_keys() -> None:
    bus = BusScheduler("t", timeout_s=1.0)
    rec = Recorder()
    tasks = [asyncio.create_task(bus.run("A", rec.make("A"))) for _ in range(4)]
    tasks += [asyncio.create_task(bus.run("B", rec.make("B"))) for _ in range(2)]
    tasks += [asyncio.create_task(bus.run("C", rec.make("C")))]
    await asyncio.gather(*tasks)
    assert [key for key, *_ in rec.log] == ["A", "B", "C", "A", "B", "A", "A"]
    assert bus.stats["A"].successes == 4
    assert not bus.busy
    assert bus.waiting == 0


async def test_timeout_and_bounded_retries(vclock: VirtualClock) -> None:
    bus = BusScheduler("t", timeout_s=0.5, retries=2)
    rec = Recorder()
    with pytest.raises(
        TransportTimeout, match=r"t: dead: poll: no complete answer within 0.5 s \(attempt 3 of 3\)"
    ):
        await bus.run("dead", rec.make("dead", 10.0), what="poll")
    assert vclock.monotonic() == pytest.approx(1.5)
    stats = bus.stats["dead"]
    assert (stats.attempts, stats.timeouts, stats.failures, stats.successes) == (3, 3, 1, 0)
    assert "TransportTimeout" in stats.last_error


async def test_a_dead_device_never_starves_the_others(vclock: VirtualClock) -> None:
    """Each live device waits at most one dead attempt per turn (pymodbus #2432)."""
    bus = BusScheduler("t", timeout_s=0.2, retries=2)
    rec = Recorder()
    done: dict[str, float] = {}

    async def poll(key: str, rounds: int, duration_s: float) -> None:
        for _ in range(rounds):
            with contextlib.suppress(TransportTimeout):
                await bus.run(key, rec.make(key, duration_s))
        done[key] = vclock.monotonic()

    await asyncio.gather(poll("dead", 5, 10.0), *(poll(k, 5, 0.04) for k in ("A", "B", "C")))
    # 15 dead attempts of 0.2 s and 15 live ones of 0.04 s; the live devices are served in
    # turn and finish together, the dead one last.
    assert done["dead"] == pytest.approx(15 * 0.2 + 15 * 0.04)
    for key in "ABC":
        assert done[key] < done["dead"]
        assert bus.stats[key].max_wait_s <= 0.2 + 2 * 0.04 + 1e-9  # one dead attempt + the others' turns
    order = [key for key, *_ in rec.log]
    # The dead device's retries go to the back of the round: never two of its turns in a row
    # while somebody else waits.
    last_live = max(i for i, key in enumerate(order) if key != "dead")
    for i in range(last_live):
        assert not order[i] == order[i + 1] == "dead", order


async def test_a_retry_lets_the_others_go_first() -> None:
    bus = BusScheduler("t", timeout_s=1.0, retries=1)
    rec = Recorder()
    failing = rec.make("X", fail=FrameError("bad CRC"))
    tasks = [
        asyncio.create_task(bus.run("X", failing)),
        asyncio.create_task(bus.run("Y", rec.make("Y"))),
    ]
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[0], FrameError)
    assert results[1] == "Y"
    assert [key for key, *_ in rec.log] == ["X", "Y", "X"]


async def test_a_refusal_is_not_retried() -> None:
    bus = BusScheduler("t", retries=3)
    rec = Recorder()
    with pytest.raises(DeviceRejectedError):
        await bus.run("A", rec.make("A", fail=DeviceRejectedError("no", code=2)))
    assert bus.stats["A"].attempts == 1
    assert bus.stats["A"].failures == 1


async def test_retries_per_call_override() -> None:
    bus = BusScheduler("t", timeout_s=0.1, retries=5)
    rec = Recorder()
    with pytest.raises(TransportTimeout):
        await bus.run("A", rec.make("A", 1.0), retries=0, timeout_s=0.05)
    assert bus.stats["A"].attempts == 1


async def test_gap_after_failure_holds_the_bus(vclock: VirtualClock) -> None:
    bus = BusScheduler("t", timeout_s=0.1, retries=0, gap_after_failure_s=0.05)
    rec = Recorder()
    first = asyncio.create_task(bus.run("A", rec.make("A", 1.0)))
    second = asyncio.create_task(bus.run("B", rec.make("B", 0.01)))
    await asyncio.gather(first, second, return_exceptions=True)
    assert rec.log[1][0] == "B"
    assert rec.log[1][1] == pytest.approx(0.15)


async def test_cancelling_a_waiting_request_frees_its_place() -> None:
    bus = BusScheduler("t")
    rec = Recorder()
    holder = asyncio.create_task(bus.run("A", rec.make("A", 0.1)))
    waiting = asyncio.create_task(bus.run("B", rec.make("B")))
    third = asyncio.create_task(bus.run("C", rec.make("C")))
    await asyncio.sleep(0.01)
    assert bus.waiting == 2
    waiting.cancel()
    await asyncio.gather(holder, third, waiting, return_exceptions=True)
    assert [key for key, *_ in rec.log] == ["A", "C"]
    assert not bus.busy
    assert bus.waiting == 0


async def test_cancelling_a_running_conversation_frees_the_bus() -> None:
    bus = BusScheduler("t")
    rec = Recorder()
    running = asyncio.create_task(bus.run("A", rec.make("A", 5.0)))
    after = asyncio.create_task(bus.run("B", rec.make("B")))
    await asyncio.sleep(0.01)
    running.cancel()
    assert await after == "B"
    assert not bus.busy


async def test_cancellation_right_after_the_grant_passes_the_turn_on() -> None:
    bus = BusScheduler("t")
    rec = Recorder()
    holder = asyncio.create_task(bus.run("A", rec.make("A", 0.1)))
    granted = asyncio.create_task(bus.run("B", rec.make("B")))
    last = asyncio.create_task(bus.run("C", rec.make("C")))
    await asyncio.sleep(0.1)  # A ends now: B is granted, but cancelled before it runs
    granted.cancel()
    await asyncio.gather(holder, granted, last, return_exceptions=True)
    assert "C" in [key for key, *_ in rec.log]
    assert not bus.busy


async def test_turn_holds_the_bus_for_a_multi_step_conversation() -> None:
    bus = BusScheduler("t")
    rec = Recorder()
    order: list[str] = []

    async def long_conversation() -> None:
        async with bus.turn("A"):
            order.append("A start")
            await asyncio.sleep(0.1)
            order.append("A end")

    async def other() -> None:
        await asyncio.sleep(0.01)
        await bus.run("B", rec.make("B"))
        order.append("B")

    await asyncio.gather(long_conversation(), other())
    assert order == ["A start", "A end", "B"]
    assert bus.stats["A"].busy_s == pytest.approx(0.1)


def test_parameters_are_checked() -> None:
    with pytest.raises(InputError):
        BusScheduler(timeout_s=0)
    with pytest.raises(InputError):
        BusScheduler(retries=-1)
    with pytest.raises(InputError):
        BusScheduler(gap_after_failure_s=-1)
    assert "busy=False" in repr(BusScheduler("x"))
