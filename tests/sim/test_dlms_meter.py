"""The simulated DLMS meter: live values from the load model, profiles, disconnect, push, serving.

Virtual time throughout (tests/conftest.py): a month of load profile is computed on demand,
and serving runs on real loopback sockets whose waits take no wall-clock time.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import tomllib
from pathlib import Path

import pytest

from metercom.clock import VirtualClock
from metercom.codec.base import NEED_DATA, Role
from metercom.codec.dlms.acse import ClientAssociationSettings
from metercom.codec.dlms.axdr import decode_data_exact
from metercom.codec.dlms.client import (
    Associate,
    AssociationEstablished,
    DlmsClientConnection,
    Get,
    GetCompleted,
)
from metercom.codec.dlms.server import select_buffer
from metercom.codec.dlms.xdlms import CosemAttributeDescriptor, DataNotification, RangeDescriptor
from metercom.codec.hdlc import ApduReceived as HdlcApduReceived
from metercom.codec.hdlc import Connect, Connected, HdlcAddress, HdlcConnection, Transmit
from metercom.codec.hdlc import SendApdu as HdlcSendApdu
from metercom.codec.wrapper import ApduReceived, SendApdu, WrapperConnection
from metercom.model.cosem.disconnect import DisconnectTrigger
from metercom.model.dlms_data import CosemDateTime, Data
from metercom.sim.dlms import DlmsMeterDevice, Faults, Quirks, build_meter, fleet_config_toml, serve_fleet
from metercom.sim.dlms.meter import _WH_MJ
from metercom.transport import open_transport
from metercom.transport.base import Transport
from metercom.transport.server import serve

START = dt.datetime(2026, 1, 5, 0, 0, tzinfo=dt.UTC)
A = CosemAttributeDescriptor.parse


def _meter(profile: str = "generic", clock: VirtualClock | None = None, seed: int = 5):  # type: ignore[no-untyped-def]
    return build_meter(profile, clock=clock or VirtualClock(START), seed=seed, serial="00000005")


def test_a_month_of_load_profile_integrates_to_the_energy_register() -> None:
    clock = VirtualClock(START)
    meter = _meter(clock=clock)
    clock.advance(31 * 86400 + 7 * 60)
    entry = meter.profile.object("1.0.99.1.0.255")
    table = select_buffer(meter.profile_buffer(entry), None)
    assert isinstance(table, Data)
    rows = table.value
    assert isinstance(rows, list)
    assert len(rows) == 2880  # profile_entries: 30 days of 15-minute rows
    times = [CosemDateTime.from_bytes(row.value[0].value).to_datetime() for row in rows]  # type: ignore[index,union-attr,arg-type]
    assert all(b - a == dt.timedelta(minutes=15) for a, b in itertools.pairwise(times))
    energy = [row.value[2].value for row in rows]  # type: ignore[index,union-attr]
    assert energy == sorted(energy)
    # Every row difference is the exact integral of the load model's power over the interval.
    first, last = times[0].astimezone(dt.UTC), times[-1].astimezone(dt.UTC)
    exact_mj = meter.energy_vector(first)[0] + meter.load.energy_between(first, last).active_import_mj  # type: ignore[union-attr]
    assert energy[-1] == exact_mj // _WH_MJ  # type: ignore[operator]
    # ... and the last row equals the live register read at that capture time.
    register = meter.profile.object("1.0.1.8.0.255")
    assert meter.attribute_value(register, 2, last).value == energy[-1]
    live = meter.attribute_value(register, 2).value
    assert isinstance(live, int)
    assert live >= energy[-1]


def test_range_selection_computes_only_the_rows_asked_for() -> None:
    clock = VirtualClock(START)
    meter = _meter(clock=clock)
    clock.advance(3 * 86400)
    entry = meter.profile.object("1.0.99.1.0.255")
    start = START + dt.timedelta(days=1, hours=2)
    selection = RangeDescriptor.by_time(start, start + dt.timedelta(hours=1)).to_selective_access()
    table = select_buffer(meter.profile_buffer(entry), selection)
    assert isinstance(table, Data)
    assert len(table.value) == 5


def test_profile_rows_are_computed_once_until_the_meter_state_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = VirtualClock(START)
    meter = _meter(clock=clock)
    clock.advance(2 * 86400)
    entry = meter.profile.object("1.0.99.1.0.255")
    start = START + dt.timedelta(days=1)
    selection = RangeDescriptor.by_time(start, start + dt.timedelta(hours=12)).to_selective_access()
    calls = 0
    compute = type(meter).column_value

    def counted(self: object, column: object, at: dt.datetime) -> Data:
        nonlocal calls
        calls += 1
        return compute(self, column, at)  # type: ignore[arg-type]

    monkeypatch.setattr(type(meter), "column_value", counted)
    first = select_buffer(meter.profile_buffer(entry), selection)
    computed = calls
    assert computed > 0
    assert select_buffer(meter.profile_buffer(entry), selection) == first
    assert calls == computed  # the second read came from the cache
    # Any change of the meter's state empties the cache: a disconnect (cut intervals) ...
    meter.disconnect_trigger(DisconnectTrigger.REMOTE_DISCONNECT)
    assert select_buffer(meter.profile_buffer(entry), selection) == first  # the cut is later
    assert calls == 2 * computed
    # ... and a clock offset, which moves the meter's time stamps and so the values at them.
    meter.set_meter_time(meter.meter_now() + dt.timedelta(minutes=7))
    shifted = select_buffer(meter.profile_buffer(entry), selection)
    assert calls == 3 * computed
    assert shifted != first


def test_disconnect_cuts_the_load_and_stops_the_registers() -> None:
    clock = VirtualClock(START + dt.timedelta(hours=18))
    meter = _meter(clock=clock)
    power = meter.profile.object("1.0.1.7.0.255")
    energy = meter.profile.object("1.0.1.8.0.255")
    voltage = meter.profile.object("1.0.32.7.0.255")
    clock.advance(600)
    assert meter.connected
    meter.disconnect_trigger(DisconnectTrigger.REMOTE_DISCONNECT)
    assert not meter.connected
    before = meter.attribute_value(energy, 2).value
    clock.advance(3600)
    assert meter.attribute_value(power, 2).value == 0
    assert meter.attribute_value(voltage, 2).value > 2000  # type: ignore[operator]  # supply is still there
    assert meter.attribute_value(energy, 2).value == before
    meter.disconnect_trigger(DisconnectTrigger.REMOTE_RECONNECT)
    clock.advance(3 * 3600)
    assert meter.attribute_value(energy, 2).value > before  # type: ignore[operator]
    state = meter.attribute_value(meter.profile.object("0.0.96.3.10.255"), 3)
    assert state == Data.enum(1)


def test_clock_offset_dst_and_no_deviation_quirk() -> None:
    clock = VirtualClock(dt.datetime(2026, 7, 1, 10, 0, tzinfo=dt.UTC))
    meter = _meter(clock=clock)
    value = CosemDateTime.from_bytes(meter.attribute_value(meter.profile.object("0.0.1.0.0.255"), 2).value)  # type: ignore[arg-type]
    assert (value.hour, value.deviation, value.clock_status) == (12, -120, 0x80)  # CEST
    meter.set_meter_time(clock.now() + dt.timedelta(minutes=5))
    assert meter.meter_now() - clock.now() == dt.timedelta(minutes=5)
    device = DlmsMeterDevice(_meter("india", clock=clock), quirks=Quirks(no_clock_deviation=True))
    raw = device.meter.attribute_value(device.meter.profile.object("0.0.1.0.0.255"), 2).value
    assert CosemDateTime.from_bytes(raw).deviation == -32768  # type: ignore[arg-type]
    device.meter.set_drift(1000.0)
    before = device.meter.meter_now() - clock.now()
    clock.advance(1000)
    assert (device.meter.meter_now() - clock.now()) - before == dt.timedelta(seconds=1)


def test_event_and_billing_profiles_have_rows() -> None:
    clock = VirtualClock(START)
    meter = _meter("india", clock=clock)
    clock.advance(70 * 86400)
    billing = select_buffer(meter.profile_buffer(meter.profile.object("1.0.98.1.0.255")), None)
    assert isinstance(billing, Data)
    assert len(billing.value) >= 2
    scaler = select_buffer(meter.profile_buffer(meter.profile.object("1.0.94.91.3.255")), None)
    assert isinstance(scaler, Data)
    assert len(scaler.value) == 1
    for e in range(7):
        table = select_buffer(meter.profile_buffer(meter.profile.object(f"0.0.99.98.{e}.255")), None)
        assert isinstance(table, Data)


# -- serving --------------------------------------------------------------------------------------


async def _wrapper_read(url: str, sap: int, attribute: CosemAttributeDescriptor) -> Data:
    link = await open_transport(url)
    try:
        wrapper = WrapperConnection(Role.CLIENT, sap, 1)
        client = DlmsClientConnection(ClientAssociationSettings())
        out: Data | None = None
        for request in (Associate(), Get(attribute)):
            await link.write(wrapper.send(SendApdu(client.send(request))))
            done = False
            while not done:
                wrapper.receive_data(await link.read(timeout_s=5))
                while (frame := wrapper.next_event()) is not NEED_DATA:
                    if isinstance(frame, ApduReceived):
                        client.receive_data(frame.apdu)
                        while (event := client.next_event()) is not NEED_DATA:
                            assert isinstance(event, AssociationEstablished | GetCompleted), event
                            if isinstance(event, GetCompleted):
                                out = decode_data_exact(event.raw())
                            done = True
        assert out is not None
        return out
    finally:
        await link.close()


async def test_push_data_notification_arrives(vclock: VirtualClock) -> None:
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def head_end(transport: Transport) -> None:
        wrapper = WrapperConnection(Role.SERVER, None, None)
        while True:
            wrapper.receive_data(await transport.read())
            while (event := wrapper.next_event()) is not NEED_DATA:
                if isinstance(event, ApduReceived):
                    await received.put(event.apdu)

    listener = await serve("tcp://127.0.0.1:0", head_end)
    try:
        device = DlmsMeterDevice(_meter("india", clock=vclock))
        meter = device.meter
        push = meter.profile.object("0.0.25.9.0.255")
        host_port = listener.url.split("://", 1)[1]
        meter.values[(push.logical_name, 3)] = Data.structure(
            Data.enum(0), Data.octet_string(host_port.encode()), Data.enum(0)
        )
        meter.push(push)
        await device._flush_pushes()
        apdu = await asyncio.wait_for(received.get(), 5)
        notification = DataNotification.from_bytes(apdu)
        body = notification.body.value
        assert isinstance(body, tuple)
        assert body[1] == Data.octet_string(b"00000005")
    finally:
        listener.close()
        await listener.wait_closed()


async def test_fleet_on_own_ports_with_faults_and_exported_config(
    vclock: VirtualClock, tmp_path: Path
) -> None:
    fleet = await serve_fleet(
        4, "tcp://127.0.0.1:0", profile="generic", seed=2, clock=vclock, faults=Faults(unreachable=0.0)
    )
    async with fleet:
        assert len(fleet.addresses()) == 4
        values = [await _wrapper_read(m.url, 16, A(1, "0.0.96.1.0.255", 2)) for m in fleet.meters]
        assert [v.value for v in values] == [m.serial.encode() for m in fleet.meters]
        config = tomllib.loads(fleet_config_toml(fleet))
        assert [m["url"] for m in config["meters"]] == [m.url for m in fleet.meters]
        assert config["meters"][0]["address"] == {"client": 16, "logical": 1}
    faulty = await serve_fleet(
        10, "tcp://127.0.0.1:0", seed=3, clock=vclock, faults=Faults.parse(["unreachable=0.5"])
    )
    async with faulty:
        assert 0 < sum(not m.reachable for m in faulty.meters) < 10


async def test_fleet_behind_one_port_with_hdlc_addressing(vclock: VirtualClock) -> None:
    fleet = await serve_fleet(3, "tcp://127.0.0.1:0", seed=1, clock=vclock, one_port=True)
    async with fleet:
        target = fleet.meters[1]
        link = await open_transport(fleet.shared_url or "")
        try:
            hdlc = HdlcConnection(Role.CLIENT, 16, HdlcAddress(1, target.physical_address))
            await link.write(hdlc.send(Connect(), now=0.0))
            client = DlmsClientConnection(ClientAssociationSettings())
            results: list[object] = []
            pending = [Associate(), Get(A(1, "0.0.96.1.0.255", 2))]
            while pending or not results or not isinstance(results[-1], GetCompleted):
                hdlc.receive_data(await link.read(timeout_s=5), now=0.0)
                while (event := hdlc.next_event()) is not NEED_DATA:
                    if isinstance(event, Transmit):
                        await link.write(event.data)
                    elif (
                        isinstance(event, Connected)
                        or (
                            isinstance(event, HdlcApduReceived)
                            and results.append(_feed(client, event.apdu)) is None
                        )
                    ) and pending:
                        await link.write(hdlc.send(HdlcSendApdu(client.send(pending.pop(0))), now=0.0))
            completed = results[-1]
            assert isinstance(completed, GetCompleted)
            assert decode_data_exact(completed.raw()).value == target.serial.encode()
        finally:
            await link.close()
        config = tomllib.loads(fleet.config_toml())
        assert config["lines"][0]["url"] == fleet.shared_url
        assert config["meters"][1]["address"]["physical"] == target.physical_address


def _feed(client: DlmsClientConnection, apdu: bytes) -> object:
    client.receive_data(apdu)
    return client.next_event()


async def test_mode_e_sign_on_then_hdlc(vclock: VirtualClock) -> None:
    device = DlmsMeterDevice(_meter(clock=vclock))
    server = await serve("tcp://127.0.0.1:0", device.serve_mode_e)
    try:
        link = await open_transport(server.url)
        try:
            await link.write(b"/?!\r\n")
            ident = b""
            while not ident.endswith(b"\r\n"):
                ident += await link.read(timeout_s=5)
            assert b"\\2" in ident
            z = ident[4:5]
            await link.write(b"\x062" + z + b"2\r\n")
            await asyncio.sleep(0.5)  # the meter switches to 8N1 after the reaction time
            hdlc = HdlcConnection(Role.CLIENT, 16, HdlcAddress(1, device.physical_address))
            await link.write(hdlc.send(Connect(), now=0.0))
            connected = False
            while not connected:
                hdlc.receive_data(await link.read(timeout_s=5), now=0.0)
                while (event := hdlc.next_event()) is not NEED_DATA:
                    connected = connected or isinstance(event, Connected)
            assert connected
        finally:
            await link.close()
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.realtime  # the config file is written from a worker thread
async def test_cli_serves_a_fleet_and_exports_config(tmp_path: Path) -> None:
    from io import StringIO

    from metercom.cli.dlms_simulate import register_simulate, simulate

    parser = argparse.ArgumentParser()
    register_simulate(parser.add_subparsers())
    target = tmp_path / "fleet.toml"
    args = parser.parse_args(
        [
            "dlms",
            "--meters",
            "2",
            "--listen",
            "tcp://127.0.0.1:0",
            "--profile",
            "india",
            "--faults",
            "drift=1",
            "--export-config",
            str(target),
            "--seed",
            "4",
        ]
    )
    stop = asyncio.Event()
    started = asyncio.Event()
    lines: list[list[str]] = []

    def ready(printed: list[str]) -> None:
        lines.append(printed)
        started.set()

    out = StringIO()
    task = asyncio.get_running_loop().create_task(simulate(args, out=out, stop=stop, ready=ready))
    await asyncio.wait_for(started.wait(), 10)
    assert len(lines[0]) == 2
    assert all("tcp://127.0.0.1:" in line for line in lines[0])
    config = tomllib.loads(target.read_text(encoding="utf-8"))
    assert len(config["meters"]) == 2
    stop.set()
    assert await task == 0


def test_quirks_and_faults_parse() -> None:
    quirks = Quirks.parse(["long-form", "pdu=128", "delay=0.25", "ua-no-info", "no-deviation"])
    assert quirks == Quirks(True, 128, 0.25, True, True)
    faults = Faults.parse(["unreachable=0.1,drop=0.2", "drift=0.5:2000", "wrong-keys"])
    assert (faults.unreachable, faults.drop, faults.drift, faults.drift_ppm, faults.wrong_keys) == (
        0.1,
        0.2,
        0.5,
        2000.0,
        1.0,
    )
    from metercom.errors import InputError

    with pytest.raises(InputError):
        Faults.parse(["bogus"])
    with pytest.raises(InputError):
        Quirks.parse(["bogus"])
