"""The shared receive buffer: wake-ups, flow control, datagrams, cancellation."""

from __future__ import annotations

import asyncio

import pytest

from metercom.clock import VirtualClock
from metercom.errors import ConnectionLost, InputError, TransportTimeout
from metercom.transport._rx import ReceiveBuffer


async def test_read_returns_as_soon_as_bytes_arrive(vclock: VirtualClock) -> None:
    rx = ReceiveBuffer("test://rx")
    asyncio.get_running_loop().call_later(1.5, rx.feed, b"abc")
    assert await rx.read(2, timeout_s=5.0) == b"ab"
    assert vclock.monotonic() == pytest.approx(1.5)
    assert await rx.read(10, timeout_s=0) == b"c"


async def test_flow_control_pauses_and_resumes() -> None:
    events: list[str] = []
    rx = ReceiveBuffer("test://rx", high_water=100)
    rx.set_flow_control(lambda: events.append("pause"), lambda: events.append("resume"))
    rx.feed(b"x" * 80)
    assert events == []
    rx.feed(b"x" * 40)
    assert events == ["pause"]
    await rx.read(60, timeout_s=0)
    assert events == ["pause"]  # 60 left, above a quarter of the high-water mark
    await rx.read(40, timeout_s=0)
    assert events == ["pause", "resume"]


async def test_unread_datagrams_beyond_the_limit_are_dropped() -> None:
    rx = ReceiveBuffer("test://udp", datagram=True, high_water=10)
    for _ in range(4):
        rx.feed(b"1234")
    assert rx.dropped_datagrams == 2
    assert await rx.read(100, timeout_s=0) == b"1234"


async def test_eof_comes_after_the_buffered_bytes() -> None:
    rx = ReceiveBuffer("test://rx")
    rx.feed(b"last words")
    rx.feed_eof("the peer closed the connection")
    rx.feed(b"ignored")
    assert await rx.read(100, timeout_s=0) == b"last words"
    with pytest.raises(ConnectionLost, match="test://rx: the peer closed"):
        await rx.read(100, timeout_s=0)


async def test_a_cancelled_read_loses_nothing() -> None:
    rx = ReceiveBuffer("test://rx")
    reader = asyncio.ensure_future(rx.read(10, timeout_s=None))
    await asyncio.sleep(1)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    rx.feed(b"kept")
    assert await rx.read(10, timeout_s=0) == b"kept"


async def test_transient_errors_are_raised_once() -> None:
    rx = ReceiveBuffer("test://udp", datagram=True)
    rx.feed_transient(ConnectionLost, "unreachable")
    with pytest.raises(ConnectionLost):
        await rx.read(10, timeout_s=0)
    with pytest.raises(TransportTimeout):
        await rx.read(10, timeout_s=0)


async def test_max_bytes_must_be_positive() -> None:
    with pytest.raises(InputError):
        await ReceiveBuffer("test://rx").read(0, timeout_s=0)
