"""Interop with pymodbus 3.16 (an independent implementation): its client against our simulators, our
client against its servers holding the same registers. Everything binds to 127.0.0.1 or a pty.

* pymodbus AsyncModbusTcpClient -> our Modbus TCP simulator (PZEM and pmtr3 maps, 0x42, exceptions);
* pymodbus AsyncModbusSerialClient (RTU) -> our simulator on a pty;
* our ModbusSession (TCP) -> pymodbus ModbusTcpServer with SimDevice/SimData registers laid out
  like a PZEM-004T (low word first) and like a pmtr3, and 0x42 registered as a custom PDU;
* our ModbusSession (RTU) -> pymodbus ModbusSerialServer on a pty.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal

import pytest
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from metercom.clock import VirtualClock
from metercom.codec.modbus import IllegalDataAddress, ServerDeviceFailure
from metercom.session.modbus import ModbusSession, ResetEnergyPdu, encode_field, open_modbus
from metercom.sim.modbus import ModbusBus, SimulatedModbusDevice, build_bus, stop_serving
from metercom.transport import open_pty

# The vclock fixture below (a real grace period for kernel-delivered bytes) applies to every test.
pytestmark = [pytest.mark.interop, pytest.mark.usefixtures("vclock")]

# The protocols.md 5.1 reply of slave 1, as registers.
PZEM_REGISTERS = [2300, 1234, 0, 2838, 0, 12345, 0, 500, 99, 0]


@pytest.fixture
def vclock() -> VirtualClock:
    # pymodbus and the pty hand bytes over through the kernel: let the virtual loop wait for real I/O.
    return VirtualClock(real_grace_s=0.2)


# -- pymodbus client -> our simulators ---------------------------------------------------------------


async def test_pymodbus_tcp_client_reads_our_simulator() -> None:
    bus = build_bus({1: "pzem004t", 2: "pmtr3"}, integrate_energy=False)
    server = await bus.serve_url("tcp://127.0.0.1:0")
    port = int(server.url.rsplit(":", 1)[1])
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
    client.register(ResetEnergyPdu)
    try:
        assert await client.connect()
        rr = await client.read_input_registers(0, count=10, device_id=1)
        assert not rr.isError()
        assert rr.registers == PZEM_REGISTERS
        current = client.convert_from_registers(
            rr.registers[1:3], client.DATATYPE.UINT32, word_order="little"
        )
        assert current == 1234

        rr = await client.read_input_registers(0, count=58, device_id=2)
        assert rr.registers[:10] == PZEM_REGISTERS
        assert rr.registers[0x38] == 0x5033

        wr = await client.write_register(1, 150, device_id=1)
        assert not wr.isError()
        hr = await client.read_holding_registers(1, count=2, device_id=1)
        assert hr.registers == [150, 1]

        reset = await client.execute(False, ResetEnergyPdu(dev_id=1))
        assert isinstance(reset, ResetEnergyPdu)
        rr = await client.read_input_registers(5, count=2, device_id=1)
        assert rr.registers == [0, 0]

        bad = await client.read_input_registers(0, count=11, device_id=1)
        assert bad.isError()
        assert bad.exception_code == 2
    finally:
        client.close()
        server.close()
        await server.wait_closed()


async def test_pymodbus_serial_client_reads_our_simulator_on_a_pty() -> None:
    bus = ModbusBus([SimulatedModbusDevice("pzem004t", 1, integrate_energy=False)])
    master, task = await bus.serve_pty()
    client = AsyncModbusSerialClient(
        master.slave_path, framer=FramerType.RTU, baudrate=9600, timeout=2, retries=0
    )
    try:
        assert await client.connect()
        rr = await client.read_input_registers(0, count=10, device_id=1)
        assert not rr.isError()
        assert rr.registers == PZEM_REGISTERS
        bad = await client.read_holding_registers(0x10, count=1, device_id=1)
        assert bad.isError()
        assert bad.exception_code == 2
    finally:
        client.close()
        await stop_serving(task)
        await master.close()


# -- our client -> pymodbus servers ---------------------------------------------------------------------


def pzem_device(unit: int) -> SimDevice:
    """A PZEM-004T register map in pymodbus's own datastore (input and holding tables apart)."""
    bits = [SimData(0, values=[False] * 16, datatype=DataType.BITS)]
    return SimDevice(
        unit,
        simdata=(
            bits,
            list(bits),
            [SimData(1, values=[2300, unit], datatype=DataType.REGISTERS)],
            [SimData(0, values=PZEM_REGISTERS, datatype=DataType.REGISTERS)],
        ),
    )


def pmtr3_device(unit: int) -> SimDevice:
    """pmtr3's poll block (phases as PZEM blocks, status, model code) and its clock and event count."""
    block = [0] * 58
    for base, volts in ((0x00, 2300), (0x10, 2310), (0x20, 2290)):
        block[base : base + 10] = [volts, *PZEM_REGISTERS[1:]]
    block[0x30] = 1  # line-to-line
    block[0x31] = 0b0001
    block[0x32:0x34] = encode_field(3, _uint32())
    unix = 1_800_000_000
    block[0x34:0x36] = encode_field(unix, _uint32())
    block[0x38] = 0x5033
    block[0x39] = 0x0100
    bits = [SimData(0, values=[False] * 16, datatype=DataType.BITS)]
    holding = [SimData(0x10, values=encode_field(unix, _uint32()), datatype=DataType.REGISTERS)]
    return SimDevice(
        unit, simdata=(bits, list(bits), holding, [SimData(0, values=block, datatype=DataType.REGISTERS)])
    )


def _uint32():
    from metercom.model.modbus_profile import Field

    return Field("x", 0, "uint32", "little")


@asynccontextmanager
async def pymodbus_tcp_server(*devices: SimDevice) -> AsyncIterator[str]:
    server = ModbusTcpServer(list(devices), address=("127.0.0.1", 0), custom_pdu=[ResetEnergyPdu])
    await server.serve_forever(background=True)
    port = server.transport.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"tcp://127.0.0.1:{port}"
    finally:
        await server.shutdown()


async def test_our_client_reads_a_pymodbus_tcp_server() -> None:
    async with (
        pymodbus_tcp_server(pzem_device(1), pmtr3_device(2)) as url,
        await open_modbus(url, timeout_s=1.0, retries=0) as session,
    ):
        pzem = {r.address: r.value for r in await session.device(1, "pzem004t").read()}
        assert pzem["voltage"] == Decimal("230.0")
        assert pzem["current"] == Decimal("1.234")
        assert pzem["active_energy"] == Decimal("12.345")
        assert pzem["alarm"] is False
        assert await session.device(1, "pzem004t").read_alarm_threshold() == Decimal(2300)
        await session.reset_energy(1)  # answered by pymodbus's custom PDU handling

        pmtr3 = {r.address: r for r in await session.device(2, "pmtr3").read()}
        assert pmtr3["l2.voltage"].value == Decimal("231.0")
        assert str(pmtr3["l2.voltage"].obis) == "1-0:52.7.128*255"  # line-to-line mode
        assert pmtr3["device_time"].value.timestamp() == 1_800_000_000  # type: ignore[union-attr]
        assert (await session.device(2, "pmtr3").read_clock()).timestamp() == 1_800_000_000

        with pytest.raises(IllegalDataAddress):
            await session.read_input_registers(1, 0, 11)
        found = await session.scan(range(1, 3), timeout_s=0.5)
        assert [(r.unit, r.profile) for r in found] == [(1, "pzem004t"), (2, "pmtr3")]
        # pymodbus 3.16 answers a unit it does not hold with SERVER DEVICE FAILURE (its SimCore
        # raises KeyError, the request handler maps any error to 0x04), not with silence or 0x0B.
        with pytest.raises(ServerDeviceFailure):
            await session.read_input_registers(3, 0, 1)


async def test_our_rtu_client_reads_a_pymodbus_serial_server_on_a_pty() -> None:
    master, slave_path = await open_pty()
    server = ModbusSerialServer(
        [pzem_device(3)], framer=FramerType.RTU, port=slave_path, baudrate=9600, custom_pdu=[ResetEnergyPdu]
    )
    await server.serve_forever(background=True)
    try:
        session = ModbusSession(master, timeout_s=1.0, retries=1)
        readings = {r.address: r.value for r in await session.device(3, "pzem004t").read()}
        assert readings["active_power"] == Decimal("283.8")
        await session.reset_energy(3)
        await session.write_register(3, 1, 500)
        assert await session.read_holding_registers(3, 1, 1) == [500]
    finally:
        await server.shutdown()
        await master.close()
        await asyncio.sleep(0)
