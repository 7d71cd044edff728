from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from metercom.clock import SystemClock, VirtualClock, current_clock


async def test_virtual_sleep_takes_no_real_time(vclock: VirtualClock) -> None:
    start = vclock.now()
    await asyncio.sleep(365 * 24 * 3600)
    assert vclock.now() - start == timedelta(days=365)
    assert current_clock() is vclock


async def test_timers_fire_in_order(vclock: VirtualClock) -> None:
    order: list[tuple[str, float]] = []

    async def later(name: str, delay: float) -> None:
        await asyncio.sleep(delay)
        order.append((name, vclock.monotonic()))

    await asyncio.gather(later("b", 2.5), later("a", 1.0), later("c", 7.0))
    assert order == [("a", 1.0), ("b", 2.5), ("c", 7.0)]


async def test_timeouts_fire_on_virtual_time(vclock: VirtualClock) -> None:
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(never, timeout=30)
    assert vclock.monotonic() == pytest.approx(30)


async def test_loopback_socket_under_virtual_time(vclock: VirtualClock) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readexactly(5))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"hello")
    assert await asyncio.wait_for(reader.readexactly(5), timeout=1.0) == b"hello"
    writer.close()
    server.close()
    await server.wait_closed()
    assert vclock.monotonic() < 1.0


def test_virtual_clock_rules() -> None:
    clock = VirtualClock(datetime(2030, 6, 1, tzinfo=UTC))
    clock.advance(1.5)
    assert clock.now() == datetime(2030, 6, 1, 0, 0, 1, 500000, tzinfo=UTC)
    clock.advance_to(1.0)
    assert clock.monotonic() == 1.5
    with pytest.raises(ValueError, match="back"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="aware"):
        VirtualClock(datetime(2030, 1, 1))  # noqa: DTZ001


def test_system_clock() -> None:
    clock = SystemClock()
    assert clock.now().tzinfo is not None
    assert current_clock().__class__ is SystemClock
    assert clock.monotonic() <= clock.monotonic()
