"""Independent DLMS clients (dlms-cosem 25.1.0, gurux-dlms 1.0.203; dev-only peers) read our simulated
meter over real loopback TCP: the wrapper, and HDLC where the peer's HDLC client works.

gurux-dlms's client does HLS-GMAC (its ``GXDLMSSecureClient`` with ``GXCiphering``: system
title, block cipher and authentication keys, security policy authenticated-encrypted, then
HLS pass 3/4 with ``getApplicationAssociationRequest``), so it is tested against our meter
too, with the wrapper and HDLC.

The peers are synchronous: each exchange runs in a worker thread (``asyncio.to_thread``) while
our server runs on the real-clock event loop (``@pytest.mark.realtime``). Nothing of the peers
is copied; they are only called.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from metercom.clock import SystemClock
from metercom.sim.dlms import (
    DEFAULT_AUTHENTICATION_KEY,
    DEFAULT_ENCRYPTION_KEY,
    DEFAULT_LLS_PASSWORD,
    DlmsMeterDevice,
    build_meter,
)
from metercom.transport.server import serve

pytestmark = [pytest.mark.interop, pytest.mark.realtime]

dlms_cosem = pytest.importorskip("dlms_cosem")

from dlms_cosem import cosem, enumerations  # noqa: E402
from dlms_cosem.client import DlmsClient  # noqa: E402
from dlms_cosem.cosem.capture_object import CaptureObject  # noqa: E402
from dlms_cosem.cosem.selective_access import RangeDescriptor  # noqa: E402
from dlms_cosem.io import BlockingTcpIO, HdlcTransport, TcpTransport  # noqa: E402
from dlms_cosem.security import (  # noqa: E402
    HighLevelSecurityGmacAuthentication,
    LowLevelSecurityAuthentication,
    NoSecurityAuthentication,
)
from dlms_cosem.utils import parse_as_dlms_data  # noqa: E402

CLIENT_TITLE = b"MTCPEER1"


def _device(profile: str) -> DlmsMeterDevice:
    meter = build_meter(profile, clock=SystemClock(), seed=7, serial="00000077")
    return DlmsMeterDevice(meter)


async def _run(device: DlmsMeterDevice, hdlc: bool, work: Callable[[str, int], Any]) -> Any:
    handler = device.serve_hdlc if hdlc else device.serve_wrapper
    server = await serve("tcp://127.0.0.1:0", handler)
    try:
        port = int(server.url.rsplit(":", 1)[1])
        return await asyncio.wait_for(asyncio.to_thread(work, "127.0.0.1", port), 30)
    finally:
        server.close()
        await server.wait_closed()


def _client(host: str, port: int, client: int, auth: Any, *, hdlc: bool = False, **kw: Any) -> DlmsClient:
    io = BlockingTcpIO(host, port, timeout=5)
    if hdlc:
        transport: Any = HdlcTransport(
            client_logical_address=client, server_logical_address=1, server_physical_address=17, io=io
        )
    else:
        transport = TcpTransport(client_logical_address=client, server_logical_address=1, io=io)
    return DlmsClient(transport=transport, authentication=auth, timeout=5, **kw)


def _attr(interface: enumerations.CosemInterface, obis: str, attribute: int) -> cosem.CosemAttribute:
    return cosem.CosemAttribute(
        interface=interface, instance=cosem.Obis.from_string(obis), attribute=attribute
    )


CLOCK = _attr(enumerations.CosemInterface.CLOCK, "0.0.1.0.0.255", 2)
SERIAL = _attr(enumerations.CosemInterface.DATA, "0.0.96.1.0.255", 2)
ENERGY = _attr(enumerations.CosemInterface.REGISTER, "1.0.1.8.0.255", 2)
ENERGY_SCALER = _attr(enumerations.CosemInterface.REGISTER, "1.0.1.8.0.255", 3)
OBJECT_LIST = _attr(enumerations.CosemInterface.ASSOCIATION_LN, "0.0.40.0.0.255", 2)


@pytest.mark.parametrize("hdlc", [False, True], ids=["wrapper", "hdlc"])
async def test_dlms_cosem_public_client_reads_identification_clock_object_list(hdlc: bool) -> None:
    device = _device("generic")

    def work(host: str, port: int) -> tuple[Any, ...]:
        with _client(host, port, 16, NoSecurityAuthentication(), hdlc=hdlc).session() as c:
            serial = parse_as_dlms_data(c.get(SERIAL))
            clock = parse_as_dlms_data(c.get(CLOCK))
            objects = parse_as_dlms_data(c.get(OBJECT_LIST))
            try:
                c.get(ENERGY)
                denied = False
            except Exception:  # noqa: BLE001 - the peer raises its own error type
                denied = True
        return serial, clock, objects, denied

    serial, clock, objects, denied = await _run(device, hdlc, work)
    assert serial == b"00000077"
    assert isinstance(clock, bytes)
    assert len(clock) == 12
    assert 2020 <= (clock[0] << 8 | clock[1]) <= 2100
    listed = {bytes(item[2]) for item in objects}
    assert bytes((0, 0, 96, 1, 0, 255)) in listed
    assert bytes((1, 0, 1, 8, 0, 255)) not in listed  # the public client sees no energy
    assert denied


async def test_dlms_cosem_lls_reader_reads_registers_india() -> None:
    device = _device("india")

    def work(host: str, port: int) -> tuple[Any, ...]:
        auth = LowLevelSecurityAuthentication(secret=DEFAULT_LLS_PASSWORD)
        with _client(host, port, 32, auth).session() as c:
            return parse_as_dlms_data(c.get(ENERGY)), parse_as_dlms_data(c.get(ENERGY_SCALER))

    value, scaler = await _run(device, False, work)
    expected = device.meter.attribute_value(device.meter.profile.object("1.0.1.8.0.255"), 2).value
    assert isinstance(value, int)
    assert abs(value - expected) <= 1  # the reading may move by a step between the two reads
    assert len(scaler) == 2


async def test_dlms_cosem_lls_wrong_password_is_rejected() -> None:
    device = _device("india")

    def work(host: str, port: int) -> str:
        client = _client(host, port, 32, LowLevelSecurityAuthentication(secret=b"wrong"))
        client.connect()
        try:
            client.associate()
        except Exception as exc:  # noqa: BLE001 - the peer raises its own error type
            return type(exc).__name__
        finally:
            client.disconnect()
        return "accepted"

    assert await _run(device, False, work) != "accepted"


def _hls_client(host: str, port: int, client: int, **kw: Any) -> DlmsClient:
    return _client(
        host,
        port,
        client,
        HighLevelSecurityGmacAuthentication(challenge_length=32),
        encryption_key=DEFAULT_ENCRYPTION_KEY,
        authentication_key=DEFAULT_AUTHENTICATION_KEY,
        client_system_title=CLIENT_TITLE,
        **kw,
    )


async def test_dlms_cosem_hls_gmac_ciphered_reads_registers_and_profile_in_blocks() -> None:
    device = _device("generic")
    meter = device.meter
    now = meter.meter_now()
    start = now.replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=6)
    end = start + dt.timedelta(hours=5)

    def work(host: str, port: int) -> tuple[Any, ...]:
        with _hls_client(host, port, 1, max_pdu_size=256).session() as c:
            energy = parse_as_dlms_data(c.get(ENERGY))
            clock_column = CaptureObject(cosem_attribute=CLOCK)
            descriptor = RangeDescriptor(
                restricting_object=clock_column,
                from_value=start,
                to_value=end,  # dlms-cosem cannot encode selected_values (NotImplementedError)
            )
            buffer = parse_as_dlms_data(
                c.get(_attr(enumerations.CosemInterface.PROFILE_GENERIC, "1.0.99.1.0.255", 2), descriptor)
            )
        return energy, buffer

    energy, buffer = await _run(device, False, work)
    assert isinstance(energy, int)
    assert energy > 0
    assert len(buffer) == 21  # 5 hours of 15-minute rows, both ends included
    assert all(len(row) == 6 for row in buffer)  # clock, status, +A, -A, +R, -R
    readings = [row[2] for row in buffer]
    assert readings == sorted(readings)
    assert readings[-1] <= energy


async def test_dlms_cosem_hls_wrong_keys_fail() -> None:
    device = _device("generic")
    device.encryption_key = bytes(16)

    def work(host: str, port: int) -> str:
        client = _hls_client(host, port, 1)
        client.connect()
        try:
            client.associate()
        except Exception as exc:  # noqa: BLE001 - the peer raises its own error type
            return type(exc).__name__
        finally:
            client.disconnect()
        return "accepted"

    assert await _run(device, False, work) != "accepted"


# --------------------------------------------------------------------------------------------
# gurux-dlms client
# --------------------------------------------------------------------------------------------


def _gurux() -> Any:
    return pytest.importorskip("gurux_dlms")


def _gx_exchange(sock: Any, client: Any, data: bytes, reply: Any) -> None:
    from gurux_dlms import GXByteBuffer, GXReplyData

    sock.sendall(bytes(data))
    received = GXByteBuffer()
    notify = GXReplyData()
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("meter closed the connection")
        received.set(chunk)
        if client.getData(received, reply, notify):
            return


def _gx_request(sock: Any, client: Any, packets: Any, reply: Any) -> None:
    """Send the packets of one request; follow block transfer (receiverReady) to the end."""
    for packet in packets if isinstance(packets, list) else [packets]:
        _gx_exchange(sock, client, packet, reply)
        while reply.isMoreData():
            _gx_exchange(sock, client, client.receiverReady(reply), reply)


class _GuruxSession:
    def __init__(self, host: str, port: int, *, client: int, auth: str, hdlc: bool) -> None:
        import socket

        from gurux_dlms import GXDLMSClient, GXReplyData
        from gurux_dlms.enums import Authentication, InterfaceType, Security
        from gurux_dlms.secure import GXDLMSSecureClient

        self.reply_type = GXReplyData
        mechanism = {
            "none": Authentication.NONE,
            "low": Authentication.LOW,
            "high-gmac": Authentication.HIGH_GMAC,
        }[auth]
        kind = GXDLMSSecureClient if auth == "high-gmac" else GXDLMSClient
        self.client = kind(
            True,
            client,
            (1 << 14 | 17) if hdlc else 1,
            mechanism,
            DEFAULT_LLS_PASSWORD if auth == "low" else None,
            InterfaceType.HDLC if hdlc else InterfaceType.WRAPPER,
        )
        self.high = auth == "high-gmac"
        if self.high:
            cipher = self.client.settings.cipher
            cipher.security = Security.AUTHENTICATION_ENCRYPTION
            cipher.systemTitle = bytearray(CLIENT_TITLE)
            cipher.blockCipherKey = bytearray(DEFAULT_ENCRYPTION_KEY)
            cipher.authenticationKey = bytearray(DEFAULT_AUTHENTICATION_KEY)
        self.sock = socket.create_connection((host, port), timeout=5)
        self.hdlc = hdlc

    def __enter__(self) -> _GuruxSession:
        try:
            return self._open()
        except BaseException:
            self.sock.close()
            raise

    def _open(self) -> _GuruxSession:
        if self.hdlc:
            reply = self.reply_type()
            _gx_request(self.sock, self.client, self.client.snrmRequest(), reply)
            self.client.parseUAResponse(reply.data)
        reply = self.reply_type()
        _gx_request(self.sock, self.client, self.client.aarqRequest(), reply)
        self.client.parseAareResponse(reply.data)
        if self.high:  # HLS pass 3 (our f(StoC)) and 4 (the meter's f(CtoS), checked by gurux)
            reply = self.reply_type()
            _gx_request(self.sock, self.client, self.client.getApplicationAssociationRequest(), reply)
            self.client.parseApplicationAssociationResponse(reply.data)
        return self

    def read(self, item: Any, attribute: int) -> Any:
        reply = self.reply_type()
        _gx_request(self.sock, self.client, self.client.read(item, attribute), reply)
        self.client.updateValue(item, attribute, reply.value)
        return item.getValues()[attribute - 1] if hasattr(item, "getValues") else reply.value

    def rows_by_range(self, profile: Any, start: dt.datetime, end: dt.datetime, columns: Any = None) -> Any:
        reply = self.reply_type()
        _gx_request(self.sock, self.client, self.client.readRowsByRange(profile, start, end, columns), reply)
        self.client.updateValue(profile, 2, reply.value)
        return profile.buffer

    def __exit__(self, *exc: object) -> None:
        try:
            reply = self.reply_type()
            _gx_request(self.sock, self.client, self.client.releaseRequest(), reply)
            if self.hdlc:
                reply = self.reply_type()
                _gx_request(self.sock, self.client, self.client.disconnectRequest(), reply)
        finally:
            self.sock.close()


@pytest.mark.parametrize("hdlc", [False, True], ids=["wrapper", "hdlc"])
async def test_gurux_public_client_reads_clock_and_serial(hdlc: bool) -> None:
    _gurux()
    from gurux_dlms.objects import GXDLMSClock, GXDLMSData

    device = _device("generic")

    def work(host: str, port: int) -> tuple[Any, Any]:
        with _GuruxSession(host, port, client=16, auth="none", hdlc=hdlc) as s:
            serial = s.read(GXDLMSData("0.0.96.1.0.255"), 2)
            clock = GXDLMSClock("0.0.1.0.0.255")
            s.read(clock, 2)
            return serial, clock.time

    serial, clock_time = await _run(device, hdlc, work)
    assert bytes(serial) == b"00000077"
    assert clock_time is not None
    assert abs(clock_time.value.astimezone(dt.UTC) - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=2)


async def test_gurux_lls_reads_registers_and_profile_range_with_columns() -> None:
    _gurux()
    from gurux_dlms.objects import GXDLMSCaptureObject, GXDLMSClock, GXDLMSProfileGeneric, GXDLMSRegister

    device = _device("india")
    now = device.meter.meter_now()
    end = now.replace(minute=0, second=0, microsecond=0)
    start = end - dt.timedelta(hours=3)

    def work(host: str, port: int) -> tuple[Any, ...]:
        with _GuruxSession(host, port, client=32, auth="low", hdlc=False) as s:
            register = GXDLMSRegister("1.0.1.8.0.255")
            s.read(register, 3)
            s.read(register, 2)
            profile = GXDLMSProfileGeneric("1.0.99.1.0.255")
            clock = GXDLMSClock("0.0.1.0.0.255")
            energy = GXDLMSRegister("1.0.1.29.0.255")
            profile.captureObjects = [
                (clock, GXDLMSCaptureObject(2, 0)),
                (energy, GXDLMSCaptureObject(2, 0)),
            ]
            rows = s.rows_by_range(profile, start, end, profile.captureObjects)
            return register.value, register.scaler, rows

    value, scaler, rows = await _run(device, False, work)
    assert value is not None
    assert scaler is not None
    assert len(rows) == 7  # 30-minute blocks over 3 hours, both ends included
    assert all(len(row) == 2 for row in rows)


@pytest.mark.parametrize("hdlc", [False, True], ids=["wrapper", "hdlc"])
async def test_gurux_hls_gmac_ciphered_reads_energy_and_clock(hdlc: bool) -> None:
    _gurux()
    from gurux_dlms.objects import GXDLMSClock, GXDLMSRegister

    device = _device("generic")

    def work(host: str, port: int) -> tuple[Any, Any, Any]:
        with _GuruxSession(host, port, client=1, auth="high-gmac", hdlc=hdlc) as s:
            register = GXDLMSRegister("1.0.1.8.0.255")
            s.read(register, 3)
            s.read(register, 2)
            clock = GXDLMSClock("0.0.1.0.0.255")
            s.read(clock, 2)
            return register.value, register.scaler, clock.time

    value, scaler, clock_time = await _run(device, hdlc, work)
    assert isinstance(value, int | float)
    assert value > 0
    assert scaler is not None
    assert abs(clock_time.value.astimezone(dt.UTC) - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=2)


async def test_gurux_hls_gmac_with_wrong_keys_is_refused() -> None:
    _gurux()
    device = _device("generic")
    device.authentication_key = bytes(16)

    def work(host: str, port: int) -> str:
        try:
            with _GuruxSession(host, port, client=1, auth="high-gmac", hdlc=False):
                return "accepted"
        except Exception as exc:  # noqa: BLE001 - the peer raises its own error types
            return type(exc).__name__

    assert await _run(device, False, work) != "accepted"
