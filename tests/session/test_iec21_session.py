"""Iec21Session against the simulated meter over a SimulatedLine, on virtual time.

Timing assertions use the wire-time bound of protocols.md 1.10/6: every byte takes 10 bit times
at its line speed, plus the reaction time t_r (200 ms for ``LTT``) before each answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from metercom.codec.iec62056_21 import (
    SAMPLE_READOUT_BYTES,
    SAMPLE_READOUT_FULL_BYTES,
    DataSet,
    ProtocolMode,
    Value,
    parse_data_block,
)
from metercom.errors import (
    AuthenticationError,
    DeviceRejectedError,
    FrameError,
    InputError,
    LocalProtocolError,
    RemoteProtocolError,
    TransportTimeout,
)
from metercom.model.obis import Obis
from metercom.session.iec21 import (
    READOUT_IDLE_S,
    Iec21Session,
    readings_from_datasets,
    step_down,
)
from metercom.sim.iec21 import ALWAYS, Iec21Faults, Iec21Meter, Iec21MeterConfig
from metercom.transport import LineSettings, SimulatedLine, Transport

T_R = 0.2  # reaction time of an upper-case FLAG ID meter (and of the reader answering it)


def wire(n_bytes: int, baud_rate: int) -> float:
    return n_bytes * 10 / baud_rate


#: The 300 -> 9600 readout of the 112-byte sample: request, t_r, ident, t_r, ACK, t_r, data.
READOUT_BOUND_S = wire(5, 300) + T_R + wire(15, 300) + T_R + wire(6, 300) + T_R + wire(112, 9600)


@asynccontextmanager
async def meter_on_line(
    config: Iec21MeterConfig | None = None,
    *,
    meter: Iec21Meter | None = None,
    line: SimulatedLine | None = None,
) -> AsyncIterator[tuple[SimulatedLine, Iec21Meter]]:
    """A simulated meter serving end ``b`` of a 300 Bd 7E1 line; the reader uses end ``a``."""
    line = line or SimulatedLine(LineSettings.parse("7E1", 300))
    meter = meter or Iec21Meter(config)
    task = asyncio.get_running_loop().create_task(meter.serve(line.b))
    try:
        yield line, meter
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await line.close()


def now() -> float:
    return asyncio.get_running_loop().time()


# -- readout --------------------------------------------------------------------------------------


async def test_readout_at_300_then_9600_takes_the_wire_time_plus_reaction_times() -> None:
    async with meter_on_line() as (line, meter):
        phases: list[tuple[str, int]] = []
        session = Iec21Session(line.a, on_progress=lambda phase, _n, baud: phases.append((phase, baud)))
        started = now()
        readout = await session.readout()
        elapsed = now() - started

    assert elapsed == pytest.approx(READOUT_BOUND_S, rel=0.02)
    assert readout.elapsed_s == pytest.approx(elapsed)
    assert readout.wire_time_s == pytest.approx(READOUT_BOUND_S - 3 * T_R)
    assert readout.identification_text == "/LTT597705377"
    assert readout.mode is ProtocolMode.C
    assert readout.baud_rate == 9600
    assert readout.baud_rates == (300, 9600, 300)
    assert readout.raw == SAMPLE_READOUT_BYTES
    assert (readout.bytes_sent, readout.bytes_received) == (5 + 6, 15 + 112)
    assert readout.attempts == 1
    assert meter.stats.baud_rates[:2] == [300, 9600]
    assert ("readout", 9600) in phases
    assert phases[-1] == ("done", 300)
    assert line.a.settings == LineSettings.parse("7E1", 300)  # back at the start speed


async def test_readout_readings_are_typed_and_keep_the_raw_text() -> None:
    async with meter_on_line() as (line, _):
        readout = await Iec21Session(line.a).readout()
    by_code = {reading.label: reading for reading in readout.readings}
    assert list(by_code) == ["0.0.0", "0.9.1", "0.9.2", "1.8.0", "1.6.0"]
    energy = by_code["1.8.0"]
    assert energy.value == Decimal("343642.9")
    assert energy.unit == "kWh"
    assert energy.obis == Obis.parse("1.8.0")
    assert energy.raw == "1.8.0(343642.9*kWh)"
    demand = by_code["1.6.0"]
    assert demand.value == Decimal(18014)
    assert demand.unit == "kW"
    assert demand.captured_at == datetime(2010, 2, 1, 0, 15, tzinfo=UTC)
    assert demand.extra == ()
    assert by_code["0.9.1"].value == "172751"  # a time stays text, never Decimal
    assert by_code["0.0.0"].value == "EM72000656621"
    assert readout.to_json()["readings"][3]["value"] == "343642.9"


async def test_time_stamps_take_the_meter_zone() -> None:
    cet = timezone(timedelta(hours=1))
    async with meter_on_line() as (line, _):
        readout = await Iec21Session(line.a, tz=cet).readout()
    assert readout.readings[4].captured_at == datetime(2010, 2, 1, 0, 15, tzinfo=cet)


async def test_full_readout_of_19_lines() -> None:
    async with meter_on_line(Iec21MeterConfig(full_readout=True)) as (line, _):
        started = now()
        readout = await Iec21Session(line.a).readout()
        elapsed = now() - started
    assert readout.raw == SAMPLE_READOUT_FULL_BYTES
    assert len(readout.readings) == 19
    bound = wire(5, 300) + wire(15, 300) + wire(6, 300) + wire(416, 9600) + 3 * T_R
    assert elapsed == pytest.approx(bound, rel=0.02)


@pytest.mark.parametrize(
    ("baud_max", "offered", "expected"),
    [(9600, 9600, 9600), (2400, 9600, 2400), (None, 19200, 19200), (9600, 19200, 9600), (9600, 1200, 1200)],
)
async def test_the_speed_is_the_fastest_both_sides_allow(
    baud_max: int | None, offered: int, expected: int
) -> None:
    async with meter_on_line(Iec21MeterConfig(baud_max=offered)) as (line, meter):
        readout = await Iec21Session(line.a, baud_max=baud_max).readout()
    assert readout.baud_rate == expected
    assert meter.stats.baud_rates[1] == expected


async def test_a_second_readout_waits_until_the_meter_is_back_at_300_baud() -> None:
    async with meter_on_line() as (line, meter):
        session = Iec21Session(line.a, retries=0)
        await session.readout()
        first_end = now()
        second = await session.readout()
        assert now() - first_end == pytest.approx(READOUT_IDLE_S + READOUT_BOUND_S, rel=0.02)
    assert second.attempts == 1
    assert meter.stats.requests == 2


async def test_device_address_is_sent_and_required_by_the_meter() -> None:
    config = Iec21MeterConfig(device_address="1", require_address=True)
    async with meter_on_line(config) as (line, _):
        readout = await Iec21Session(line.a, address="1").readout()
        assert readout.baud_rate == 9600
        with pytest.raises(TransportTimeout, match="identification"):
            await Iec21Session(line.a, retries=0).readout()


def test_bad_options_are_input_errors() -> None:
    line = SimulatedLine()
    with pytest.raises(InputError, match="address"):
        Iec21Session(line.a, address="a!b")
    with pytest.raises(InputError, match="baud_max"):
        Iec21Session(line.a, baud_max=100)
    with pytest.raises(InputError, match="retries"):
        Iec21Session(line.a, retries=-1)


def test_step_down() -> None:
    assert [step_down(rate) for rate in (19200, 9600, 4800, 600, 300, 5000)] == [
        9600,
        4800,
        2400,
        300,
        300,
        4800,
    ]


# -- modes A, B, E --------------------------------------------------------------------------------


async def test_mode_a_meter_answers_at_300_baud_at_once() -> None:
    async with meter_on_line(Iec21MeterConfig(mode=ProtocolMode.A)) as (line, _):
        started = now()
        readout = await Iec21Session(line.a).readout()
        elapsed = now() - started
    assert readout.mode is ProtocolMode.A
    assert readout.baud_rate == 300
    assert readout.baud_rates == (300,)
    assert readout.identification_text == "/LTT 97705377"
    assert elapsed == pytest.approx(wire(5, 300) + T_R + wire(15, 300) + T_R + wire(112, 300), rel=0.02)


async def test_mode_b_meter_switches_right_after_the_identification() -> None:
    async with meter_on_line(Iec21MeterConfig(mode=ProtocolMode.B, baud_max=4800)) as (line, _):
        started = now()
        readout = await Iec21Session(line.a, baud_max=1200).readout()  # mode B: the meter decides
        elapsed = now() - started
    assert readout.mode is ProtocolMode.B
    assert readout.identification_text == "/LTTD97705377"
    assert readout.baud_rate == 4800
    assert elapsed == pytest.approx(wire(5, 300) + T_R + wire(15, 300) + T_R + wire(112, 4800), rel=0.02)


async def test_mode_e_meter_gives_a_plain_readout_with_ack_0_z_0() -> None:
    async with meter_on_line(Iec21MeterConfig(mode=ProtocolMode.E)) as (line, _):
        readout = await Iec21Session(line.a).readout()
    assert readout.mode is ProtocolMode.E
    assert readout.identification_text == "/LTT5\\297705377"
    assert readout.baud_rate == 9600


async def test_handover_to_hdlc_leaves_the_line_at_8n1() -> None:
    received: list[tuple[int, bytes]] = []

    async def hdlc(transport: Transport, baud_rate: int, trailing: bytes) -> None:
        frame = bytearray(trailing)
        while frame.count(0x7E) < 2:
            frame += await transport.read(timeout_s=5)
        received.append((baud_rate, bytes(frame)))
        await transport.write(bytes(frame))  # echo it back, a stand-in for the DLMS server

    meter = Iec21Meter(Iec21MeterConfig(mode=ProtocolMode.E), binary_handler=hdlc)
    async with meter_on_line(meter=meter) as (line, _):
        session = Iec21Session(line.a)
        baud_rate = await session.handover_to_hdlc()
        assert baud_rate == 9600
        assert line.a.settings == LineSettings.parse("8N1", 9600)
        assert session.trailing_data == b""
        frame = b"\x7e\xa0\x07\x03\x21\x93\x0f\x01\x7e"
        await line.a.write(frame)
        echoed = b""
        while len(echoed) < len(frame):
            echoed += await line.a.read(timeout_s=1)
        assert echoed == frame
        await asyncio.sleep(1)
        assert line.b.settings == LineSettings.parse("7E1", 300)  # the meter is idle again
        # The meter went back to idle after its handler; the session can read it again.
        readout = await session.readout()
    assert received == [(9600, b"\x7e\xa0\x07\x03\x21\x93\x0f\x01\x7e")]
    assert meter.stats.handovers == 1
    assert readout.baud_rate == 9600


async def test_handover_without_a_handler_ends_cleanly_and_the_meter_can_be_read_again() -> None:
    async with meter_on_line(Iec21MeterConfig(mode=ProtocolMode.E)) as (line, meter):
        session = Iec21Session(line.a)
        assert await session.handover_to_hdlc() == 9600
        await asyncio.sleep(meter.config.binary_idle_s + 0.5)
        readout = await session.readout()
    assert readout.attempts == 1
    assert meter.stats.handovers == 1


async def test_handover_needs_a_mode_e_meter() -> None:
    async with meter_on_line() as (line, _):
        with pytest.raises(DeviceRejectedError, match="binary mode"):
            await Iec21Session(line.a).handover_to_hdlc()


# -- programming mode -----------------------------------------------------------------------------


async def test_programming_read_write_and_sign_off() -> None:
    async with meter_on_line() as (line, meter):
        session = Iec21Session(line.a, password="00000000")
        async with session.programming() as prog:
            assert prog.baud_rate == 9600
            assert prog.operand == "12345678"
            energy = await prog.read("1.8.0")
            assert energy.value == Decimal("343642.9")
            assert energy.reading.unit == "kWh"
            await prog.write("0.9.1", "172751")
            await prog.write("0.9.2", "260102")
            assert (await prog.read("0.9.2")).value == "260102"
            assert await prog.execute("C.1.0()") is None
        assert not prog.active
        await asyncio.sleep(0.5)
        assert meter.stats.sign_offs == 1
        assert meter.stats.writes == 2
        assert meter.executed == ["C.1.0()"]
        assert line.a.settings.baud_rate == 300
        readout = await session.readout()  # the write shows in the next readout
    assert "0.9.2(260102)" in [reading.raw for reading in readout.readings]


async def test_one_conversation_at_a_time() -> None:
    async with meter_on_line() as (line, _):
        session = Iec21Session(line.a)
        async with session.programming() as prog:
            with pytest.raises(LocalProtocolError, match="inside"):
                await session.readout()
            with pytest.raises(LocalProtocolError, match="already active"):
                async with session.programming():
                    pass
            waiting = asyncio.get_running_loop().create_task(session.readout())  # another task waits
            await asyncio.sleep(1)
            assert not waiting.done()
            assert (await prog.read("1.8.0")).value == Decimal("343642.9")
        readout = await waiting
    assert readout.baud_rate == 9600


async def test_programming_read_in_partial_blocks() -> None:
    async with (
        meter_on_line(Iec21MeterConfig(block_size=4)) as (line, _),
        Iec21Session(line.a).programming() as prog,
    ):
        answer = await prog.read("0.0.0", command_type="3")
    assert answer.blocks == 5  # "0.0.0(EM72000656621)" in blocks of 4 characters
    assert answer.value == "EM72000656621"


async def test_programming_refusals_are_device_rejected() -> None:
    async with meter_on_line() as (line, _):
        async with Iec21Session(line.a).programming() as prog:  # no password given
            with pytest.raises(DeviceRejectedError, match=r"read 9\.9\.9: .*\(ERROR\)") as rejected:
                await prog.read("9.9.9")
            assert rejected.value.code == "ERROR"
            with pytest.raises(DeviceRejectedError, match=r"write 0\.9\.1"):
                await prog.write("0.9.1", "120000")  # writes need the password
            assert (await prog.read("1.8.0")).value == Decimal("343642.9")  # still in programming mode
        with pytest.raises(LocalProtocolError, match="not active"):
            await prog.read("1.8.0")


async def test_invalid_values_are_refused_by_the_meter() -> None:
    async with (
        meter_on_line() as (line, _),
        Iec21Session(line.a, password="00000000").programming() as prog,
    ):
        with pytest.raises(DeviceRejectedError):
            await prog.write("0.9.1", "256199")  # 25:61:99 is no time
        with pytest.raises(InputError):
            await prog.write("0.9.1", "12\x03")  # ETX cannot be sent inside a value


async def test_wrong_password_is_an_authentication_error_and_signs_off() -> None:
    async with meter_on_line() as (line, meter):
        session = Iec21Session(line.a, password="12345678")
        with pytest.raises(AuthenticationError, match="refused the password") as refused:
            async with session.programming():
                pytest.fail("the body must not run")
        assert "12345678" not in str(refused.value)
        await asyncio.sleep(0.5)
        assert meter.stats.wrong_passwords == 1
        assert meter.stats.sign_offs == 1
        assert meter.stats.requests == 1  # authentication errors are not retried
        async with session.programming(password="00000000") as prog:  # the session is still usable
            assert (await prog.read("1.8.0")).value == Decimal("343642.9")


async def test_wrong_password_lockout() -> None:
    config = Iec21MeterConfig(faults=Iec21Faults(lockout_after=2), lockout_s=600)
    async with meter_on_line(config) as (line, meter):
        session = Iec21Session(line.a)
        for _ in range(2):
            with pytest.raises(AuthenticationError, match=r"\(ERROR\)"):
                async with session.programming(password="bad"):
                    pass
        with pytest.raises(AuthenticationError, match="LOCKED"):
            async with session.programming(password="00000000"):
                pass
        await asyncio.sleep(600)
        async with session.programming(password="00000000") as prog:
            await prog.write("0.9.1", "101010")
    assert meter.stats.locked_refusals == 1


async def test_programming_needs_mode_c() -> None:
    async with meter_on_line(Iec21MeterConfig(mode=ProtocolMode.A)) as (line, _):
        with pytest.raises(DeviceRejectedError, match="mode A"):
            async with Iec21Session(line.a).programming():
                pass


# -- faults and retries ---------------------------------------------------------------------------


async def test_corrupt_bcc_once_is_nakked_and_repeated() -> None:
    config = Iec21MeterConfig(faults=Iec21Faults(corrupt_bcc=1))
    async with meter_on_line(config) as (line, meter):
        started = now()
        readout = await Iec21Session(line.a).readout()
        elapsed = now() - started
    assert readout.raw == SAMPLE_READOUT_BYTES
    assert readout.attempts == 1
    assert (meter.stats.corrupted_sent, meter.stats.readouts_sent) == (1, 2)
    # one more round: our NAK after t_r, the meter's repeat after its t_r
    assert elapsed == pytest.approx(READOUT_BOUND_S + T_R + wire(1, 9600) + T_R + wire(112, 9600), rel=0.02)


async def test_corrupt_bcc_every_time_is_a_frame_error_after_bounded_naks() -> None:
    config = Iec21MeterConfig(faults=Iec21Faults(corrupt_bcc=ALWAYS))
    async with meter_on_line(config) as (line, meter):
        with pytest.raises(FrameError, match=r"readout at 9600 Bd: .*BCC.*after 3 repeat requests"):
            await Iec21Session(line.a, retries=0).readout()
    assert meter.stats.readouts_sent == 4  # the first one and three repeats


async def test_corrupt_bcc_every_time_with_retries_steps_the_baud_rate_down() -> None:
    config = Iec21MeterConfig(faults=Iec21Faults(corrupt_bcc=ALWAYS))
    async with meter_on_line(config) as (line, meter):
        with pytest.raises(FrameError, match=r"attempt 3 of 3"):
            await Iec21Session(line.a, retries=2).readout()
    assert [rate for rate in meter.stats.baud_rates if rate != 300] == [9600, 4800, 2400]


async def test_no_answer_is_a_timeout_at_the_right_virtual_time() -> None:
    config = Iec21MeterConfig(faults=Iec21Faults(no_answer=ALWAYS))
    async with meter_on_line(config) as (line, _):
        started = now()
        with pytest.raises(TransportTimeout) as timeout:
            await Iec21Session(line.a, retries=0).readout()
        elapsed = now() - started
    assert elapsed == pytest.approx(wire(5, 300) + 1.5, abs=1e-6)
    message = str(timeout.value)
    assert "sign-on" in message
    assert "identification" in message
    assert "1.5 s at 300 Bd" in message


async def test_no_answer_with_retries_waits_for_a_quiet_line_between_attempts() -> None:
    config = Iec21MeterConfig(faults=Iec21Faults(no_answer=ALWAYS))
    async with meter_on_line(config) as (line, meter):
        started = now()
        with pytest.raises(TransportTimeout, match="attempt 3 of 3"):
            await Iec21Session(line.a, retries=2, retry_delay_s=2.0).readout()
        elapsed = now() - started
    assert elapsed == pytest.approx(3 * (wire(5, 300) + 1.5) + 2 * 2.0, abs=1e-6)
    assert meter.stats.ignored_requests == 3


async def test_no_answer_once_then_success() -> None:
    config = Iec21MeterConfig(faults=Iec21Faults(no_answer=1))
    async with meter_on_line(config) as (line, _):
        readout = await Iec21Session(line.a).readout()
    assert readout.attempts == 2
    assert readout.baud_rate == 4800  # one step down, as esphome does


async def test_garbage_instead_of_the_identification_is_retried() -> None:
    config = Iec21MeterConfig(faults=Iec21Faults(garbage=1))
    async with meter_on_line(config) as (line, meter):
        readout = await Iec21Session(line.a).readout()
        await asyncio.sleep(READOUT_IDLE_S)  # a new session does not know the meter is still at 4800 Bd
        meter._faults_left["garbage"] = 1
        with pytest.raises(RemoteProtocolError, match="sign-on at 300 Bd"):
            await Iec21Session(line.a, retries=0).readout()
    assert readout.attempts == 2
    assert meter.stats.garbage_sent == 2


async def test_refused_baud_rate_is_retried_one_step_lower() -> None:
    config = Iec21MeterConfig(faults=Iec21Faults(refuse_baud_above=4800))
    async with meter_on_line(config) as (line, meter):
        readout = await Iec21Session(line.a).readout()
    assert readout.baud_rate == 4800
    assert readout.attempts == 2
    assert readout.raw == SAMPLE_READOUT_BYTES
    assert meter.stats.refused_switches == 1


async def test_refused_baud_rate_without_retries_fails_with_the_speed_in_the_message() -> None:
    config = Iec21MeterConfig(faults=Iec21Faults(refuse_baud_above=4800))
    async with meter_on_line(config) as (line, _):
        with pytest.raises((RemoteProtocolError, TransportTimeout), match="9600 Bd"):
            await Iec21Session(line.a, retries=0).readout()


async def test_settle_time_is_waited_before_the_switch() -> None:
    async with meter_on_line() as (line, _):
        started = now()
        readout = await Iec21Session(line.a, settle_s=0.1).readout()
        assert now() - started == pytest.approx(READOUT_BOUND_S, rel=0.02)  # hidden in the meter's t_r
    assert readout.baud_rate == 9600


async def test_settle_time_longer_than_the_reaction_time_loses_the_start_of_the_answer() -> None:
    # The field caveat of settle_s: the meter starts at 9600 Bd t_r after the ACK.
    async with meter_on_line() as (line, _):
        with pytest.raises((RemoteProtocolError, TransportTimeout)):
            await Iec21Session(line.a, settle_s=0.35, retries=0).readout()


async def test_wake_up_preamble_and_pause_come_first() -> None:
    async with meter_on_line() as (line, _):
        started = now()
        readout = await Iec21Session(line.a, wake_up=True).readout()
        elapsed = now() - started
    assert readout.bytes_sent == 66 + 5 + 6
    assert elapsed == pytest.approx(wire(66, 300) + 1.5 + READOUT_BOUND_S, rel=0.02)


# -- link quirks ----------------------------------------------------------------------------------


def echoing_line() -> SimulatedLine:
    return SimulatedLine(LineSettings.parse("7E1", 300), echo=True)


async def test_echoing_head_with_echo_cancellation() -> None:
    async with meter_on_line(line=echoing_line()) as (line, _):
        readout = await Iec21Session(line.a, echo_cancel=True).readout()
        async with Iec21Session(line.a, echo_cancel=True, password="00000000").programming() as prog:
            await prog.write("0.9.1", "010203")
    assert readout.raw == SAMPLE_READOUT_BYTES
    assert readout.bytes_received == 15 + 112  # echoes are not counted


async def test_echoing_head_without_echo_cancellation_names_the_fix() -> None:
    async with meter_on_line(line=echoing_line()) as (line, _):
        with pytest.raises(RemoteProtocolError, match="echo"):
            await Iec21Session(line.a, retries=0).readout()


async def test_echo_cancellation_on_a_line_without_echo_is_harmless() -> None:
    async with meter_on_line() as (line, _):
        readout = await Iec21Session(line.a, echo_cancel=True).readout()
    assert readout.raw == SAMPLE_READOUT_BYTES


class Fixed8N1(Transport):
    """A transparent modem: its UART stays 8N1 whatever the reader asks; only the speed follows."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.url = f"modem:{inner.url}"

    @property
    def line(self) -> LineSettings | None:
        return self.inner.line

    async def read(self, max_bytes: int = 4096, *, timeout_s: float | None = None) -> bytes:
        return await self.inner.read(max_bytes, timeout_s=timeout_s)

    async def write(self, data: bytes) -> None:
        await self.inner.write(data)

    async def drain(self) -> None:
        await self.inner.drain()

    async def set_line(self, settings: LineSettings) -> None:
        await self.inner.set_line(LineSettings.parse("8N1", settings.baud_rate))

    def discard_input(self) -> None:
        self.inner.discard_input()

    async def close(self) -> None:
        await self.inner.close()


async def test_software_parity_over_an_8n1_wire() -> None:
    async with meter_on_line() as (line, _):
        readout = await Iec21Session(Fixed8N1(line.a), software_parity=True).readout()
        assert line.a.settings == LineSettings.parse("8N1", 300)
    assert readout.raw == SAMPLE_READOUT_BYTES


async def test_an_8n1_wire_without_software_parity_says_so() -> None:
    async with meter_on_line() as (line, _):
        with pytest.raises(RemoteProtocolError, match="software_parity"):
            await Iec21Session(Fixed8N1(line.a), retries=0).readout()


# -- readings from data sets ----------------------------------------------------------------------


def test_readings_keep_unparsed_lines_and_manufacturer_codes() -> None:
    datasets = parse_data_block(
        "F.F(00000000)\r\nC.1.0(12345678)\r\n1.8.0*12(007900,58*kWh)\r\nFF(42)(7*V)\r\n"
        "garbage without brackets\r\n2.8.0(1.5)(3.5)\r\n"
    )
    readings = readings_from_datasets(datasets)
    assert [reading.value for reading in readings] == [
        "00000000",
        "12345678",
        Decimal("7900.58"),
        "42",
        "garbage without brackets",
        Decimal("1.5"),
    ]
    assert readings[2].label == "1.8.0*12"
    assert readings[3].obis is None
    assert readings[3].address == "FF"
    assert readings[3].extra == (Decimal(7),)
    assert readings[4].obis is None
    assert readings[4].raw == "garbage without brackets"
    assert readings[5].extra == (Decimal("3.5"),)
    assert readings[5].captured_at is None


def test_readings_from_built_data_sets() -> None:
    dataset = DataSet.of("1.6.0", Value.of("5", "kW"), Value.of("2026-01-02 03:04"))
    (reading,) = readings_from_datasets([dataset], tz=UTC)
    assert reading.captured_at == datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    assert reading.value == Decimal(5)
