"""The simulated IEC 62056-21 meter: configuration, the bytes it sends and when, faults, serving.

Byte-level tests talk to the meter with hand-made messages over a SimulatedLine on virtual time,
so they check the meter independently of our reader; whole-session behaviour is in
tests/session/test_iec21_session.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from metercom.codec.iec62056_21 import (
    SAMPLE_READOUT,
    SAMPLE_READOUT_BYTES,
    SAMPLE_READOUT_FULL_BYTES,
    AckOptionSelect,
    AnswerMessage,
    CommandMessage,
    DataSet,
    ProtocolMode,
    RequestMessage,
    Value,
)
from metercom.errors import InputError
from metercom.session.iec21 import Iec21Session
from metercom.sim.iec21 import (
    ALWAYS,
    Iec21Faults,
    Iec21Meter,
    Iec21MeterConfig,
    parse_mode,
    serve_iec21,
)
from metercom.transport import LineSettings, SimulatedLine, Transport, open_transport

SEVEN_E_ONE_300 = LineSettings.parse("7E1", 300)


@asynccontextmanager
async def serving(meter: Iec21Meter, line: SimulatedLine | None = None) -> AsyncIterator[SimulatedLine]:
    line = line or SimulatedLine(SEVEN_E_ONE_300)
    task = asyncio.get_running_loop().create_task(meter.serve(line.b))
    try:
        yield line
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await line.close()


async def read_until(transport: Transport, end: bytes, timeout_s: float = 5.0) -> bytes:
    data = b""
    while not data.endswith(end):
        data += await transport.read(timeout_s=timeout_s)
    return data


async def read_block(transport: Transport, timeout_s: float = 5.0) -> bytes:
    """An STX/SOH block through its BCC."""
    data = b""
    while len(data) < 2 or data[-2] not in (0x03, 0x04):
        data += await transport.read(1, timeout_s=timeout_s)
    return data


def now() -> float:
    return asyncio.get_running_loop().time()


# -- configuration --------------------------------------------------------------------------------


def test_default_meter_is_the_worked_example() -> None:
    meter = Iec21Meter()
    assert meter.identification.to_bytes() == b"/LTT597705377\r\n"
    assert meter.readout_message().to_bytes() == SAMPLE_READOUT_BYTES
    assert (
        Iec21Meter(Iec21MeterConfig(full_readout=True)).readout_message().to_bytes()
        == SAMPLE_READOUT_FULL_BYTES
    )
    assert meter.register("1.8.0") == "(343642.9*kWh)"
    assert meter.register("1-0:1.8.0*255") == "(343642.9*kWh)"  # any OBIS spelling
    assert meter.register("9.9.9") is None


@pytest.mark.parametrize(
    ("mode", "baud_max", "identification"),
    [
        (ProtocolMode.C, 19200, b"/LTT697705377\r\n"),
        (ProtocolMode.B, 600, b"/LTTA97705377\r\n"),
        (ProtocolMode.A, 9600, b"/LTT 97705377\r\n"),
        (ProtocolMode.E, 9600, b"/LTT5\\297705377\r\n"),
    ],
)
def test_identification_per_mode(mode: ProtocolMode, baud_max: int, identification: bytes) -> None:
    config = Iec21MeterConfig(mode=mode, baud_max=baud_max)
    assert config.identification.to_bytes() == identification
    assert config.identification.protocol_mode is mode


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mode": ProtocolMode.D}, "mode D"),
        ({"baud_max": 14400}, "baud_max"),
        ({"mode": ProtocolMode.B, "baud_max": 300}, "mode B"),
        ({"manufacturer": "LT"}, "FLAG ID"),
        ({"ident": "a/b"}, "ident"),
        ({"device_address": "x!"}, "address"),
        ({"block_size": 0}, "block_size"),
    ],
)
def test_invalid_configurations_are_input_errors(options: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        Iec21MeterConfig(**options)  # type: ignore[arg-type]


def test_parse_mode() -> None:
    assert parse_mode("e") is ProtocolMode.E
    for bad in ("D", "X", ""):
        with pytest.raises(InputError, match="A, B, C or E"):
            parse_mode(bad)


def test_fault_specs() -> None:
    assert Iec21Faults.parse([]) == Iec21Faults()
    faults = Iec21Faults.parse(
        ["corrupt-bcc", "no_answer=2", "garbage=always", "refuse-baud-above=4800", "lockout=3"]
    )
    assert faults == Iec21Faults(
        corrupt_bcc=1, no_answer=2, garbage=ALWAYS, refuse_baud_above=4800, lockout_after=3
    )
    for bad, message in (
        ("sparks", "unknown fault"),
        ("lockout", "needs a value"),
        ("garbage=lots", "count"),
    ):
        with pytest.raises(InputError, match=message):
            Iec21Faults.parse([bad])


def test_readout_provider_is_the_load_model_hook() -> None:
    power = ["1.5"]

    def provider() -> list[DataSet]:
        return [DataSet.of("1.7.0", Value.of(power[0], "kW")), DataSet.of("1.8.0", Value.of("10.0", "kWh"))]

    meter = Iec21Meter(Iec21MeterConfig(readout_provider=provider))
    assert meter.readout_message().data == "1.7.0(1.5*kW)\r\n1.8.0(10.0*kWh)\r\n"
    power[0] = "2.5"
    assert meter.register("1.7.0") == "(2.5*kW)"
    assert meter.register("0.9.1") == "(172751)"  # registers still answer what the provider lacks


# -- on the wire ----------------------------------------------------------------------------------


async def test_meter_answers_after_its_reaction_time_and_switches_speed() -> None:
    async with serving(Iec21Meter()) as line:
        reader = line.a
        await reader.write(RequestMessage().to_bytes())
        assert await read_until(reader, b"\r\n") == b"/LTT597705377\r\n"
        # request 5 bytes + t_r 200 ms + identification 15 bytes, all at 300 Bd
        assert now() == pytest.approx(5 / 30 + 0.2 + 15 / 30)
        await asyncio.sleep(0.2)
        await reader.write(AckOptionSelect.readout("5").to_bytes())
        await reader.drain()
        ack_end = now()
        await reader.set_line(LineSettings.parse("7E1", 9600))
        assert await read_block(reader) == SAMPLE_READOUT_BYTES
        assert now() == pytest.approx(ack_end + 0.2 + 112 / 960)
        await asyncio.sleep(1.6)  # no NAK: after t_r max the meter is back at 300 Bd
        assert line.b.settings == SEVEN_E_ONE_300


async def test_meter_repeats_the_readout_on_nak() -> None:
    meter = Iec21Meter()
    async with serving(meter) as line:
        reader = line.a
        await reader.write(RequestMessage().to_bytes())
        await read_until(reader, b"\r\n")
        await asyncio.sleep(0.2)
        await reader.write(AckOptionSelect.readout("0").to_bytes())  # stay at 300 Bd
        assert await read_block(reader) == SAMPLE_READOUT_BYTES
        await asyncio.sleep(0.2)
        await reader.write(b"\x15")
        assert await read_block(reader) == SAMPLE_READOUT_BYTES
    assert meter.stats.readouts_sent == 2
    assert meter.stats.baud_rates == [300]


async def test_meter_with_an_address_ignores_other_requests() -> None:
    meter = Iec21Meter(Iec21MeterConfig(device_address="42", require_address=True))
    async with serving(meter) as line:
        for request in (RequestMessage(), RequestMessage("7")):
            await line.a.write(request.to_bytes())
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(2):
                    await line.a.read()
        await line.a.write(RequestMessage("0042").to_bytes())  # leading zeros of numbers ignored
        assert await read_until(line.a, b"\r\n") == b"/LTT597705377\r\n"
    assert meter.stats.requests == 1


async def test_meter_survives_noise_and_a_reader_at_the_wrong_speed() -> None:
    meter = Iec21Meter()
    async with serving(meter) as line:
        await line.a.set_line(LineSettings.parse("7E1", 9600))
        await line.a.write(b"/?!\r\n" * 3)  # garbage at the meter's 300 Bd UART
        await line.a.drain()
        await line.a.set_line(SEVEN_E_ONE_300)
        line.inject(b"\x02\x03\xff\x15", to="b")
        await asyncio.sleep(2)
        readout = await Iec21Session(line.a, retries=0).readout()
    assert readout.raw == SAMPLE_READOUT_BYTES


async def test_programming_mode_bytes() -> None:
    meter = Iec21Meter()
    async with serving(meter) as line:
        reader = line.a
        await reader.write(RequestMessage().to_bytes())
        await read_until(reader, b"\r\n")
        await asyncio.sleep(0.2)
        await reader.write(AckOptionSelect.programming("0").to_bytes())
        assert await read_block(reader) == CommandMessage.password_request("12345678").to_bytes()
        exchanges = [
            (CommandMessage.write("0.9.1", "120000"), AnswerMessage("(ERROR)").to_bytes()),  # no password yet
            (CommandMessage.password("00000000"), b"\x06"),
            (CommandMessage.write("0.9.1", "120000"), b"\x06"),
            (CommandMessage.read("0.9.1"), AnswerMessage("0.9.1(120000)").to_bytes()),
            (CommandMessage.write("0.9.2", "991399"), AnswerMessage("(ERROR)").to_bytes()),  # month 13
            (CommandMessage.write("7.7.7", "1"), AnswerMessage("(ERROR)").to_bytes()),  # unknown register
            (CommandMessage.execute("X()"), b"\x06"),
        ]
        for command, expected in exchanges:
            await asyncio.sleep(0.2)
            await reader.write(command.to_bytes())
            answer = b"\x06" if expected == b"\x06" else b""
            answer = await reader.read(1, timeout_s=5) if answer else await read_block(reader)
            assert answer == expected, command
        await asyncio.sleep(0.2)
        await reader.write(CommandMessage.sign_off().to_bytes())
        await asyncio.sleep(0.5)
    assert meter.registers["0.9.1"] == "(120000)"
    assert meter.executed == ["X()"]
    assert meter.stats.sign_offs == 1
    assert meter.readout_message().data.count("0.9.1(120000)") == 1


async def test_corrupt_bcc_fault_flips_only_the_bcc() -> None:
    meter = Iec21Meter(Iec21MeterConfig(faults=Iec21Faults(corrupt_bcc=1)))
    async with serving(meter) as line:
        reader = line.a
        await reader.write(RequestMessage().to_bytes())
        await read_until(reader, b"\r\n")
        await asyncio.sleep(0.2)
        await reader.write(AckOptionSelect.readout("0").to_bytes())
        corrupt = await read_block(reader)
        assert corrupt[:-1] == SAMPLE_READOUT_BYTES[:-1]
        assert corrupt[-1] == SAMPLE_READOUT_BYTES[-1] ^ 1
        await asyncio.sleep(0.2)
        await reader.write(b"\x15")
        assert await read_block(reader) == SAMPLE_READOUT_BYTES


async def test_refuse_baud_fault_keeps_the_start_speed() -> None:
    meter = Iec21Meter(Iec21MeterConfig(faults=Iec21Faults(refuse_baud_above=2400)))
    async with serving(meter) as line:
        reader = line.a
        await reader.write(RequestMessage().to_bytes())
        await read_until(reader, b"\r\n")
        await asyncio.sleep(0.2)
        await reader.write(AckOptionSelect.readout("5").to_bytes())
        assert await read_block(reader) == SAMPLE_READOUT_BYTES  # still at 300 Bd
    assert meter.stats.refused_switches == 1
    assert meter.stats.baud_rates == [300]


async def test_fault_counts_are_used_up() -> None:
    meter = Iec21Meter(Iec21MeterConfig(faults=Iec21Faults(no_answer=2, garbage=1)))
    async with serving(meter) as line:
        session = Iec21Session(line.a, retries=3)
        readout = await session.readout()
    assert readout.attempts == 4
    assert (meter.stats.ignored_requests, meter.stats.garbage_sent) == (2, 1)
    assert readout.baud_rate == 1200  # 9600 -> 4800 -> 2400 -> 1200, one step per retry


# -- serving --------------------------------------------------------------------------------------


async def test_serve_on_tcp_announces_the_url() -> None:
    announced: list[str] = []
    server = await serve_iec21(
        "tcp://127.0.0.1:0", Iec21MeterConfig(full_readout=True), announce=announced.append
    )
    try:
        assert announced == [server.url]
        assert "Iec21MeterServer" in repr(server)
    finally:
        server.close()
        await server.wait_closed()


async def test_serve_forever_ends_when_cancelled() -> None:
    server = await serve_iec21("tcp://127.0.0.1:0")
    task = asyncio.get_running_loop().create_task(server.serve_forever())
    await asyncio.sleep(1)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()


async def test_serve_on_a_pty() -> None:
    server = await serve_iec21("pty")
    try:
        async with await open_transport(server.url) as port:  # a serial client can open it
            assert port.url == server.url
    finally:
        server.close()
        await server.wait_closed()


def test_sample_data_sets_round_trip() -> None:
    meter = Iec21Meter()
    assert [dataset.raw for dataset in meter.datasets()] == [
        dataset.raw for dataset in SAMPLE_READOUT.datasets
    ]
