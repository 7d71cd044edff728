"""DlmsClient (session) against the scripted meter of ``tests/codec/dlms/test_client_kit.py`` over
TCP (wrapper) and the simulated serial line (HDLC), on virtual time: typed and scaled values,
profiles, time-outs that fire at the right time, a meter closing its socket, release on exit."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "codec" / "dlms"))

from test_client_kit import (
    AK,
    CLIENT_TITLE,
    EK,
    PROFILE_START_S,
    SERVER_TITLE,
    ScriptedMeter,
    serve_hdlc,
    serve_wrapper,
)

from metercom.codec.dlms.acse import (
    ApplicationContextName,
    AuthenticationMechanism,
    ServerAssociationPolicy,
)
from metercom.codec.dlms.results import ObjectUndefinedError
from metercom.codec.dlms.security import MemoryCounterStore
from metercom.errors import (
    AuthenticationError,
    ConfigError,
    ConnectionLost,
    InputError,
    TransportTimeout,
)
from metercom.model.cosem import ControlState, Quantity
from metercom.model.dlms_data import Data
from metercom.model.obis import Obis
from metercom.model.units import Unit
from metercom.session.dlms import DlmsClient, DlmsKeys, guess_class_id, parse_dlms_url
from metercom.transport import LineSettings, SimulatedLine, Transport, serve

START = datetime.fromtimestamp(PROFILE_START_S, UTC)
KEYS = DlmsKeys(EK, AK, CLIENT_TITLE)


def now() -> float:
    return asyncio.get_running_loop().time()


@asynccontextmanager
async def tcp_meter(meter: ScriptedMeter, **kw: int) -> AsyncIterator[str]:
    async def handler(transport: Transport) -> None:
        await serve_wrapper(transport, meter, **kw)

    async with await serve("tcp://127.0.0.1:0", handler) as server:
        yield server.url


@asynccontextmanager
async def line_meter(
    meter: ScriptedMeter, serve_fn: Callable[[Transport, ScriptedMeter], Awaitable[None]] = serve_hdlc
) -> AsyncIterator[SimulatedLine]:
    line = SimulatedLine(LineSettings(9600))
    task = asyncio.create_task(serve_fn(line.b, meter))
    try:
        yield line
    finally:
        await line.b.close()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_scaled_register_over_tcp_wrapper_reads_the_scaler_once() -> None:
    meter = ScriptedMeter()
    async with tcp_meter(meter) as url, DlmsClient.connect(url) as client:
        value = await client.get("1-0:1.8.0")
        assert value == Quantity(Decimal("12345.67"), Unit.WATT_HOUR)
        count = len(meter.requests)
        assert await client.get("1-0:1.8.0") == value
        assert len(meter.requests) == count + 1  # scaler_unit cached
        reading = await client.read("1-0:1.8.0")
        assert reading.value == Decimal("12345.67")
        assert reading.unit == "Wh"
        assert reading.obis == Obis.parse("1-0:1.8.0")
        assert await client.get("0-0:96.1.0") == "SIM0001"
        assert await client.get("1-0:1.8.0", raw=True) == Data.double_long_unsigned(1234567)
    assert meter.released


async def test_get_many_splits_and_returns_errors_in_place() -> None:
    meter = ScriptedMeter(policy=ServerAssociationPolicy(max_receive_pdu_size=64))
    async with tcp_meter(meter) as url, DlmsClient.connect(url) as client:
        targets = ["1-0:1.8.0", "0-0:96.1.0", "1-0:9.9.9", *["0-0:96.1.0"] * 6]
        values = await client.get_many(targets, return_errors=True)
        assert values[0] == Quantity(Decimal("12345.67"), Unit.WATT_HOUR)
        assert values[1] == "SIM0001"
        assert isinstance(values[2], ObjectUndefinedError)
        with pytest.raises(ObjectUndefinedError):
            await client.get_many(targets)


async def test_profile_over_hdlc_on_a_serial_line_with_range_and_block_transfer() -> None:
    meter = ScriptedMeter()
    async with line_meter(meter) as line, DlmsClient.connect(line.a, max_pdu_size=256) as client:
        start, end = START + timedelta(hours=1), START + timedelta(hours=3)
        profile = await client.read_profile("1-0:99.1.0", start=start, end=end)
        assert len(profile) == 9
        assert profile.blocks >= 2
        assert profile.names[:2] == ("0-0:1.0.0*255", "1-0:1.8.0*255")
        first = profile.rows[0]
        assert first[0] == start
        assert first[0].tzinfo is not None
        assert first[1] == Decimal("10.04")  # (1000 + 4) * 10^-2 Wh
        assert profile.columns[2].unit == "Wh"
        assert first[2] == Decimal("2.004")
        records = profile.records()
        assert records[-1]["0-0:1.0.0*255"] == end
        readings = profile.readings()
        assert readings[0].captured_at == start
        assert readings[0].unit == "Wh"
        whole = await client.read_profile("1-0:99.1.0")
        assert len(whole) == 96
        assert whole.blocks > 10
        some = await client.read_profile("1-0:99.1.0", entries=(2, 4))
        assert [row[0] for row in some.rows] == [START + timedelta(minutes=15 * i) for i in (1, 2, 3)]
    assert meter.released


async def test_clock_disconnect_and_reconnect() -> None:
    meter = ScriptedMeter()
    async with tcp_meter(meter) as url, DlmsClient.connect(url) as client:
        assert await client.read_clock() == START + timedelta(hours=5)
        when = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
        await client.set_clock(when)
        assert await client.read_clock() == when
        assert await client.disconnect() is ControlState.DISCONNECTED
        assert await client.reconnect() is ControlState.CONNECTED
        assert await client.get("0-0:1.0.0") == when


async def test_timeout_fires_at_the_configured_virtual_time() -> None:
    meter = ScriptedMeter(silent_after=2)  # answers the AARQ, then nothing
    async with (
        tcp_meter(meter) as url,
        DlmsClient.connect(url, timeout_s=2.5, retries=0, release_timeout_s=1.0) as client,
    ):
        started = now()
        with pytest.raises(TransportTimeout, match=r"within 2.5 s"):
            await client.get("1-0:1.8.0")
        assert now() - started == pytest.approx(2.5, abs=0.01)


async def test_idempotent_get_is_retried_a_bounded_number_of_times() -> None:
    meter = ScriptedMeter(silent_after=2)
    async with (
        tcp_meter(meter) as url,
        DlmsClient.connect(url, timeout_s=1.0, retries=2, release_timeout_s=0.5) as client,
    ):
        started = now()
        with pytest.raises(TransportTimeout):
            await client.get("0-0:96.1.0")
        assert now() - started == pytest.approx(3.0, abs=0.01)
        assert len(meter.requests) == 4  # AARQ + three GET attempts
        with pytest.raises(TransportTimeout):
            await client.set("0-0:96.1.0", Data.visible_string("x"))
        assert len(meter.requests) == 5  # SET never repeated


async def test_meter_closing_its_socket_ends_the_call_with_connection_lost_at_once() -> None:
    meter = ScriptedMeter()
    async with tcp_meter(meter, close_after=2) as url, DlmsClient.connect(url, timeout_s=30.0) as client:
        started = now()
        with pytest.raises(ConnectionLost, match="closed the link"):
            await client.get("1-0:1.8.0")
        assert now() - started < 0.1
    # leaving the block after the loss neither hangs nor raises


async def test_release_on_exit_even_after_an_error() -> None:
    meter = ScriptedMeter()
    with pytest.raises(ObjectUndefinedError):
        async with tcp_meter(meter) as url, DlmsClient.connect(url) as client:
            await client.get("1-0:9.9.9")
    assert meter.released


async def test_release_is_bounded_when_the_meter_goes_silent() -> None:
    meter = ScriptedMeter(silent_after=3)
    async with tcp_meter(meter) as url:
        started = now()
        async with DlmsClient.connect(url, timeout_s=5.0, release_timeout_s=1.5) as client:
            await client.get("0-0:96.1.0")
        assert now() - started == pytest.approx(1.5, abs=0.01)


async def test_wrong_lls_password_raises_authentication_error() -> None:
    policy = ServerAssociationPolicy(
        mechanisms=frozenset({AuthenticationMechanism.LOW}), lls_password=b"secret12"
    )
    meter = ScriptedMeter(policy=policy)
    async with tcp_meter(meter) as url:
        with pytest.raises(AuthenticationError, match="check the password"):
            async with DlmsClient.connect(url, auth="low", password="wrong"):
                pass
        async with DlmsClient.connect(url, auth="low", password="secret12") as client:
            assert await client.get("0-0:96.1.0") == "SIM0001"


async def test_hls_gmac_ciphered_over_hdlc_with_a_counter_store() -> None:
    policy = ServerAssociationPolicy(
        application_context_names=(ApplicationContextName.LOGICAL_NAME_WITH_CIPHERING,),
        mechanisms=frozenset({AuthenticationMechanism.HIGH_GMAC}),
        system_title=SERVER_TITLE,
    )
    meter = ScriptedMeter(policy=policy, keys=True)
    store = MemoryCounterStore()
    async with (
        line_meter(meter) as line,
        DlmsClient.connect(line.a, auth="hls-gmac", keys=KEYS, counter_store=store) as client,
    ):
        assert client.association is not None
        assert client.association.ciphered
        assert await client.get("1-0:1.8.0") == Quantity(Decimal("12345.67"), Unit.WATT_HOUR)
    assert store.values["own"] > 0
    assert meter.released


async def test_wrapper_over_a_transport_and_object_list_errors() -> None:
    meter = ScriptedMeter()
    async with line_meter(meter, serve_wrapper) as line, DlmsClient.connect(line.a, link="wrapper") as client:
        with pytest.raises(ObjectUndefinedError):
            await client.read_object_list()


def test_urls() -> None:
    assert parse_dlms_url("tcp://10.0.0.1:4059") == ("wrapper", "tcp://10.0.0.1:4059", None)
    assert parse_dlms_url("udp://10.0.0.1:4059")[0] == "wrapper"
    assert parse_dlms_url("hdlc+tcp://10.0.0.1:4001") == ("hdlc", "tcp://10.0.0.1:4001", None)
    kind, url, line = parse_dlms_url("hdlc+serial:///dev/ttyUSB0?baud=19200")
    assert (kind, url, line) == ("hdlc", "serial:///dev/ttyUSB0", LineSettings(19200, 8, "N", 1))
    kind, url, line = parse_dlms_url("iec21+hdlc:///dev/ttyUSB0")
    assert kind == "iec21+hdlc"
    assert line == LineSettings(300, 7, "E", 1)
    with pytest.raises(InputError, match="Accepted forms"):
        parse_dlms_url("ftp://x")


def test_class_guesses() -> None:
    assert guess_class_id(Obis.parse("0-0:1.0.0")) == 8
    assert guess_class_id(Obis.parse("1-0:1.8.0")) == 3
    assert guess_class_id(Obis.parse("1-0:99.1.0")) == 7
    assert guess_class_id(Obis.parse("0-0:96.3.10")) == 70
    assert guess_class_id(Obis.parse("0-0:96.1.0")) == 1


def test_keys_from_file_and_hidden(tmp_path: Path) -> None:
    path = tmp_path / "keys.txt"
    path.write_text(f"ek = {EK.hex()}\nak = {AK.hex()}\nsystem_title = {CLIENT_TITLE.hex()}  # ours\n")
    keys = DlmsKeys.from_file(path)
    assert keys == KEYS
    assert EK.hex() not in repr(keys)
    (tmp_path / "k.json").write_text(
        f'{{"ek": "{EK.hex()}", "ak": "{AK.hex()}", "system_title": "{CLIENT_TITLE.hex()}"}}'
    )
    assert DlmsKeys.from_file(tmp_path / "k.json") == KEYS
    with pytest.raises(ConfigError):
        DlmsKeys.from_file(tmp_path / "missing")


async def test_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown auth"):
        async with DlmsClient.connect("tcp://127.0.0.1:1", auth="md5"):
            pass
    with pytest.raises(ConfigError, match="HLS-GMAC needs keys"):
        async with DlmsClient.connect("tcp://127.0.0.1:1", auth="hls-gmac"):
            pass
