"""The simulated line: wire timing on the virtual clock, settings physics, seeded faults."""

from __future__ import annotations

import asyncio

import pytest

from metercom.clock import VirtualClock
from metercom.errors import ConnectionLost, InputError, TransportTimeout
from metercom.transport import LineSettings, SimulatedEnd, SimulatedLine

IEC_START = LineSettings.parse("7E1", 300)
CHAR_300_S = 10 / 300


async def collect(end: SimulatedEnd, quiet_s: float = 1.0) -> bytes:
    """Everything that arrives until the line has been quiet for ``quiet_s``."""
    data = bytearray()
    while True:
        try:
            data += await end.read(timeout_s=quiet_s)
        except TransportTimeout:
            return bytes(data)


async def send(end: SimulatedEnd, data: bytes) -> None:
    await end.write(data)
    await end.drain()


# -- timing ------------------------------------------------------------------------------------


async def test_five_bytes_at_300_7e1_take_exactly_their_wire_time(vclock: VirtualClock) -> None:
    line = SimulatedLine(IEC_START)
    started = vclock.monotonic()
    await line.a.write(b"/?!\r\n")
    assert vclock.monotonic() == started  # write() queues and returns
    await line.a.drain()
    assert vclock.monotonic() - started == pytest.approx(5 * 10 / 300, rel=1e-12)


async def test_each_byte_arrives_at_the_end_of_its_stop_bit(vclock: VirtualClock) -> None:
    line = SimulatedLine(IEC_START)
    await line.a.write(b"/?!\r\n")
    arrivals = []
    for expected in b"/?!\r\n":
        assert await line.b.read(1, timeout_s=1.0) == bytes([expected])
        arrivals.append(vclock.monotonic())
    assert arrivals == pytest.approx([k * CHAR_300_S for k in range(1, 6)], rel=1e-12)


async def test_latency_is_added_after_the_stop_bit(vclock: VirtualClock) -> None:
    line = SimulatedLine(IEC_START, latency_s=0.05)
    await line.a.write(b"A")
    assert await line.b.read(timeout_s=1.0) == b"A"
    assert vclock.monotonic() == pytest.approx(CHAR_300_S + 0.05)


async def test_writes_queue_back_to_back(vclock: VirtualClock) -> None:
    line = SimulatedLine(IEC_START)
    await line.a.write(b"12345")
    await asyncio.sleep(0.05)  # in the middle of the second character
    await line.a.write(b"67890")
    await line.a.drain()
    assert vclock.monotonic() == pytest.approx(10 * CHAR_300_S)
    assert await collect(line.b) == b"1234567890"


async def test_eleven_bit_characters_are_slower(vclock: VirtualClock) -> None:
    line = SimulatedLine(LineSettings.parse("8E1", 9600))
    await send(line.a, bytes(96))
    assert vclock.monotonic() == pytest.approx(96 * 11 / 9600)


async def test_a_2000_byte_readout_at_300_baud_takes_66_s_of_virtual_time(vclock: VirtualClock) -> None:
    # protocols.md section 6: 2 kB at 300 Bd is 66.7 s of wire time.
    line = SimulatedLine(IEC_START)
    payload = (b"1.8.0(001234.567*kWh)\r\n" * 90)[:2000]
    await line.b.write(payload)
    received = await collect(line.a, quiet_s=0.5)
    assert received == payload
    assert line.b.tx_busy_until_s == pytest.approx(2000 / 30)
    assert line.stats.b_to_a.busy_s == pytest.approx(2000 / 30)


async def test_full_duplex_directions_are_independent(vclock: VirtualClock) -> None:
    line = SimulatedLine(IEC_START)
    await line.a.write(b"ab")
    await line.b.write(b"xy")
    assert await collect(line.b, 0.2) == b"ab"
    assert await collect(line.a, 0.2) == b"xy"


# -- settings ----------------------------------------------------------------------------------


async def test_baud_change_via_set_line(vclock: VirtualClock) -> None:
    line = SimulatedLine(IEC_START)
    fast = IEC_START.with_baud(9600)
    await line.a.set_line(fast)
    assert line.a.line == fast
    assert line.b.line == IEC_START  # each end has its own UART
    await line.b.set_line(fast)
    started = vclock.monotonic()
    await send(line.a, b"/?!\r\n")
    assert vclock.monotonic() - started == pytest.approx(5 * 10 / 9600)
    assert await collect(line.b) == b"/?!\r\n"


async def test_baud_mismatch_gives_deterministic_garbage(vclock: VirtualClock) -> None:
    async def garbage(seed: int) -> bytes:
        line = SimulatedLine(IEC_START, settings_b=IEC_START.with_baud(9600), seed=seed)
        await send(line.a, b"/?!\r\n" * 4)
        received = await collect(line.b)
        assert line.stats.a_to_b.garbled == 20
        return received

    first = await garbage(seed=1)
    assert first != b"/?!\r\n" * 4
    assert len(first) == 20  # a faster receiver sees (at least) one character per character
    assert all(byte < 0x80 for byte in first)  # a 7-bit receiver delivers 7 bits
    assert await garbage(seed=1) == first
    assert await garbage(seed=2) != first


async def test_a_slower_receiver_sees_fewer_characters(vclock: VirtualClock) -> None:
    line = SimulatedLine(IEC_START.with_baud(9600), settings_b=IEC_START)
    await send(line.a, bytes(range(64)) * 4)
    received = await collect(line.b)
    assert len(received) < 64  # about 256 * 300 / 9600 = 8
    assert line.stats.a_to_b.garbled == 256


@pytest.mark.parametrize(("baud_b", "garbled"), [(9700, False), (9400, True), (9850, True)])
async def test_baud_tolerance_is_two_percent(baud_b: int, garbled: bool) -> None:
    line = SimulatedLine(LineSettings(9600), settings_b=LineSettings(baud_b))
    await send(line.a, b"hello")
    received = await collect(line.b)
    assert (received != b"hello") is garbled


async def test_frame_length_mismatch_garbles() -> None:
    line = SimulatedLine(LineSettings.parse("8N1", 9600), settings_b=LineSettings.parse("8E1", 9600))
    await send(line.a, b"hello")
    assert await collect(line.b) != b"hello"
    assert line.stats.a_to_b.garbled == 5


async def test_7e1_sender_puts_parity_in_bit_7_for_an_8n1_receiver() -> None:
    line = SimulatedLine(IEC_START, settings_b=LineSettings.parse("8N1", 300))
    await send(line.a, b"8")
    assert await collect(line.b) == b"\xb8"
    # Field note: the IEC request on an 8N1 wire.
    await send(line.a, b"/?!\r\n")
    assert await collect(line.b) == bytes.fromhex("AF 3F 21 8D 0A")


async def test_7e1_receiver_strips_parity_and_counts_errors() -> None:
    line = SimulatedLine(LineSettings.parse("8N1", 300), settings_b=IEC_START)
    # 0xB8 is '8' with correct even parity in bit 7; 0x38 is '8' with the parity bit missing.
    await send(line.a, b"\xb8\x38\xaf")
    assert await collect(line.b) == b"88/"
    assert line.stats.a_to_b.parity_errors == 1


async def test_7o1_against_7e1_has_parity_errors_on_every_character() -> None:
    line = SimulatedLine(LineSettings.parse("7O1", 300), settings_b=IEC_START)
    await send(line.a, b"ABC")
    assert await collect(line.b) == b"ABC"
    assert line.stats.a_to_b.parity_errors == 3


async def test_set_line_without_drain_tears_the_character_on_the_wire(vclock: VirtualClock) -> None:
    # The classic bug (protocols.md 1.6): switching speed before the ACK has left the UART.
    line = SimulatedLine(IEC_START, seed=3)
    fast = IEC_START.with_baud(9600)
    await line.a.write(b"ABC")
    await asyncio.sleep(1.5 * CHAR_300_S)  # in the middle of 'B'
    await line.a.set_line(fast)  # no drain()
    await line.b.set_line(fast)
    await line.a.drain()
    # 'B' still ends at its old time; 'C' follows at the new speed.
    assert vclock.monotonic() == pytest.approx(2 * CHAR_300_S + 10 / 9600)
    received = await collect(line.b)
    assert received[0:1] == b"A"
    assert received[-1:] == b"C"
    assert b"B" not in received
    assert line.stats.a_to_b.garbled == 1


async def test_receiver_switching_mid_character_tears_it(vclock: VirtualClock) -> None:
    line = SimulatedLine(IEC_START)
    await line.a.write(b"AB")
    await asyncio.sleep(1.5 * CHAR_300_S)
    await line.b.set_line(IEC_START)  # same settings: nothing happens
    await line.b.set_line(IEC_START.with_baud(301))  # within tolerance, but mid-character
    received = await collect(line.b)
    assert received[0:1] == b"A"
    assert received[1:] != b"B"


# -- faults ------------------------------------------------------------------------------------


async def _noisy_transfer(seed: int, **faults: float) -> tuple[bytes, SimulatedLine]:
    line = SimulatedLine(LineSettings(19200), seed=seed, **faults)  # type: ignore[arg-type]
    payload = bytes(range(256)) * 8
    await send(line.a, payload)
    return await collect(line.b), line


async def test_bit_errors_are_seeded_and_reproducible() -> None:
    payload = bytes(range(256)) * 8
    first, line = await _noisy_transfer(7, bit_error_rate=0.002)
    stats = line.stats.a_to_b
    assert 0 < stats.bit_errors < len(payload)
    assert first != payload
    # A flipped stop bit is a framing error, a flipped start bit loses sync; data bits corrupt.
    assert stats.framing_errors + stats.garbled <= stats.bit_errors
    again, _ = await _noisy_transfer(7, bit_error_rate=0.002)
    assert again == first
    other, _ = await _noisy_transfer(8, bit_error_rate=0.002)
    assert other != first


async def test_drop_rate_loses_whole_characters() -> None:
    received, line = await _noisy_transfer(1, drop_rate=0.1)
    stats = line.stats.a_to_b
    assert len(received) == 2048 - stats.dropped
    assert 100 < stats.dropped < 320
    again, _ = await _noisy_transfer(1, drop_rate=0.1)
    assert again == received


async def test_cut_loses_characters_on_the_wire_until_restore() -> None:
    line = SimulatedLine(IEC_START)
    payload = b"0123456789"
    await line.a.write(payload)
    await asyncio.sleep(0.11)  # during character 3 (0.100..0.133 s)
    line.cut()
    assert line.is_cut
    await asyncio.sleep(0.08)  # restore at 0.19 s, during character 5 (0.167..0.200 s)
    line.restore()
    assert not line.is_cut
    assert await collect(line.b) == payload[:3] + payload[6:]
    assert line.stats.a_to_b.cut == 3


async def test_bytes_sent_while_cut_are_lost() -> None:
    line = SimulatedLine(IEC_START)
    line.cut()
    await send(line.a, b"lost")
    line.restore()
    await send(line.a, b"kept")
    assert await collect(line.b) == b"kept"
    assert line.stats.a_to_b.cut == 4


async def test_inject_puts_noise_into_a_receiver() -> None:
    line = SimulatedLine(IEC_START, settings_b=LineSettings(300))
    line.inject(b"\x00\xff", to="a")
    line.inject(b"\x00\xff", to="b")
    assert await line.a.read(timeout_s=0) == b"\x00\x7f"  # masked to 7 bits by a 7E1 UART
    assert await line.b.read(timeout_s=0) == b"\x00\xff"
    assert line.stats.b_to_a.injected == 2
    assert line.stats.a_to_b.injected == 2


async def test_echo_returns_our_own_transmission(vclock: VirtualClock) -> None:
    line = SimulatedLine(IEC_START, echo=True, latency_s=0.01)
    await line.a.write(b"/?!\r\n")
    assert await line.a.read(1, timeout_s=1.0) == b"/"
    assert vclock.monotonic() == pytest.approx(CHAR_300_S)  # no line latency for the echo
    assert await collect(line.a, 0.2) == b"?!\r\n"
    assert await collect(line.b, 0.2) == b"/?!\r\n"
    # The meter end has no echo unless asked for.
    await send(line.b, b"ident")
    assert await collect(line.a, 0.2) == b"ident"
    assert await collect(line.b, 0.2) == b""
    # A cut line still echoes: the light never leaves the head.
    line.cut()
    await send(line.a, b"x")
    assert await collect(line.a, 0.2) == b"x"
    assert await collect(line.b, 0.2) == b""


async def test_stats_count_bytes_and_busy_time() -> None:
    line = SimulatedLine(IEC_START)
    await send(line.a, b"12345")
    await send(line.b, b"1234567890")
    await collect(line.a, 0.2)
    await collect(line.b, 0.2)
    assert line.stats.a_to_b.bytes_sent == 5
    assert line.stats.a_to_b.bytes_delivered == 5
    assert line.stats.a_to_b.busy_s == pytest.approx(5 * CHAR_300_S)
    assert line.stats.b_to_a.bytes_sent == 10
    assert line.stats.b_to_a.busy_s == pytest.approx(10 * CHAR_300_S)


# -- lifetime ----------------------------------------------------------------------------------


async def test_close_delivers_what_was_sent_then_connection_lost(vclock: VirtualClock) -> None:
    line = SimulatedLine(IEC_START)
    await line.a.write(b"bye")
    await line.a.close()  # before the bytes have left
    assert await line.b.read(timeout_s=1.0) == b"b"
    assert await collect_until_lost(line.b) == b"ye"
    assert vclock.monotonic() == pytest.approx(3 * CHAR_300_S)
    with pytest.raises(ConnectionLost, match=r"other end \(a\) closed"):
        await line.b.write(b"hello?")


async def collect_until_lost(end: SimulatedEnd) -> bytes:
    """Everything that arrives before the read raises ConnectionLost (which it must)."""
    data = bytearray()
    while True:
        try:
            data += await end.read(timeout_s=5.0)
        except ConnectionLost:
            return bytes(data)


async def test_closed_end_drops_what_arrives() -> None:
    line = SimulatedLine(IEC_START)
    await line.b.write(b"late")
    await line.a.close()
    await asyncio.sleep(1.0)
    with pytest.raises(ConnectionLost, match="closed on this side"):
        await line.a.read(timeout_s=0)
    await line.close()


async def test_read_waits_for_the_first_character(vclock: VirtualClock) -> None:
    line = SimulatedLine(LineSettings(1200))
    reader = asyncio.ensure_future(line.b.read(timeout_s=5.0))
    await asyncio.sleep(1.0)
    await line.a.write(b"abc")
    assert await reader == b"a"
    assert vclock.monotonic() == pytest.approx(1.0 + 10 / 1200)


@pytest.mark.parametrize(
    "kwargs",
    [{"bit_error_rate": -0.1}, {"drop_rate": 1.5}, {"latency_s": -1.0}, {"baud_tolerance": 1.0}],
)
def test_bad_parameters_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(InputError):
        SimulatedLine(**kwargs)  # type: ignore[arg-type]


def test_repr_and_urls() -> None:
    line = SimulatedLine(IEC_START, name="optical")
    assert line.a.url == "sim://optical/a"
    assert line.b.peer is line.a
    assert "300 7E1" in repr(line)
