"""Benchmark: Modbus RTU device reads on a 9,600 Bd bus, and CPU per client+server cycle vs pymodbus.

Two measurements, each reported as a ratio:

1. **Bus throughput against the wire limit.** Ten simulated PZEM-004T units (and, in a second
   row, three pmtr3 units) share one :class:`~metercom.transport.SimulatedLine` at 9,600 Bd 8N1.
   The client reads them round-robin, all requests queued at once, so the bus scheduler decides
   the order. Everything runs on a :class:`~metercom.clock.VirtualClock`: the elapsed virtual
   time is the time a real bus would need. The wire limit of one PZEM read is the request
   (8 characters), the reply (25 characters) and the two t3.5 silences the spec requires
   (before the reply and before the next request): 40 characters of 10 bits, so 24.0 reads/s.
   The ratio shows how much of the wire the stack leaves unused (scheduling, turnaround).
   The real CPU seconds the run took are printed too (CPU is never the limit on a serial bus).

2. **CPU per full client+server cycle**, in memory, without asyncio or I/O: a client encodes
   "read 10 input registers", the server side frames, decodes, executes and encodes the reply,
   the client frames and decodes it. metercom: pymodbus PDU classes + metercom's RtuFramer on
   both sides + the simulated PZEM (values, energy, alarm refreshed on every request) + the
   session's reply checks. pymodbus 3.16.1: its own RTU framer and decoders on both sides and
   its SimDevice datastore (static registers), the path of ``ModbusSerialServer`` and
   ``AsyncModbusSerialClient`` minus the event loop. Field notes measured pymodbus at about
   64,000 cycles/s on this kind of machine.

Run: ``.venv/bin/python bench/modbus_bus.py`` (``--quick`` for a short run).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU, ModbusPDU
from pymodbus.pdu.register_message import ReadInputRegistersRequest
from pymodbus.simulator import DataType, SimData, SimDevice
from pymodbus.simulator.simcore import SimCore

from metercom.clock import VirtualClock
from metercom.codec.base import NEED_DATA, Role
from metercom.codec.modbus import Adu, RtuFramer, encode_rtu, rtu_silence_s
from metercom.session.modbus import ModbusSession, encode_request
from metercom.sim.modbus import build_bus
from metercom.transport import LineSettings, SimulatedLine

if __package__:
    from bench.common import Comparison, ops_per_second, report
else:  # run as a script: bench/ itself is on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.common import Comparison, ops_per_second, report

BAUD_RATE = 9600
LINE = LineSettings(BAUD_RATE)  # 8N1: 10 bits per character, like the PZEM-004T
PZEM_REGISTERS = [2300, 1234, 0, 2838, 0, 12345, 0, 500, 99, 0]


def wire_limit_reads_per_s(request_chars: int, reply_chars: int) -> float:
    """Reads per second the wire allows: both frames plus a t3.5 silence before each reply and request."""
    t35 = rtu_silence_s(BAUD_RATE, LINE.bits_per_char)
    return 1.0 / ((request_chars + reply_chars) * LINE.char_time_s + 2 * t35)


# -- 1. bus throughput ------------------------------------------------------------------------------


async def _poll_bus(profile: str, units: int, rounds: int) -> tuple[int, float]:
    """Read ``units`` devices ``rounds`` times; returns (reads, virtual seconds)."""
    loop = asyncio.get_running_loop()
    line = SimulatedLine(LINE, name="bench")
    bus = build_bus(dict.fromkeys(range(1, units + 1), profile), integrate_energy=False)
    task = bus.attach(line)
    session = ModbusSession(line.a, timeout_s=0.5)
    devices = [session.device(unit, profile) for unit in range(1, units + 1)]
    try:
        await devices[0].read()  # warm-up: the first request has no gap before it
        start = loop.time()
        reads = 0
        for _ in range(rounds):
            results = await asyncio.gather(*(device.read() for device in devices))
            reads += len(results)
        return reads, loop.time() - start
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await line.close()


def bus_throughput(profile: str, units: int, rounds: int, reply_chars: int) -> tuple[float, float, float]:
    """(reads/s on virtual time, wire limit reads/s, real CPU seconds of the run)."""
    clock = VirtualClock()
    started = time.process_time()
    reads, elapsed_s = clock.run(_poll_bus(profile, units, rounds))
    cpu_s = time.process_time() - started
    return reads / elapsed_s, wire_limit_reads_per_s(8, reply_chars), cpu_s


# -- 2. CPU per cycle ---------------------------------------------------------------------------------


def metercom_cycle() -> Callable[[], list[int]]:
    """One client+server cycle through metercom's code paths, sans I/O."""
    bus = build_bus({1: "pzem004t"}, integrate_energy=False)
    server_framer = RtuFramer(Role.SERVER, silence_s=rtu_silence_s(BAUD_RATE, 10))
    client_framer = RtuFramer(Role.CLIENT, silence_s=rtu_silence_s(BAUD_RATE, 10))
    session = ModbusSession(SimulatedLine(LINE).a)

    def cycle() -> list[int]:
        request = ReadInputRegistersRequest(address=0, count=10, dev_id=1)
        server_framer.receive_data(encode_rtu(1, encode_request(request)), 0.0)
        adu = server_framer.next_event()
        assert isinstance(adu, Adu)
        reply_pdu = bus.respond(adu.unit, adu.pdu)
        assert reply_pdu is not None
        client_framer.receive_data(encode_rtu(adu.unit, reply_pdu), 0.0)
        reply_adu = client_framer.next_event()
        assert isinstance(reply_adu, Adu)
        assert server_framer.next_event() is NEED_DATA
        registers: list[int] = session.decode_reply(reply_adu, request).registers  # type: ignore[assignment]
        return registers

    return cycle


def _run_coroutine(coroutine: Coroutine[Any, Any, ModbusPDU]) -> ModbusPDU:
    """Run a coroutine that never suspends (pymodbus's datastore calls) without an event loop."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        result: ModbusPDU = done.value
        return result
    raise RuntimeError("the datastore coroutine suspended")


def pymodbus_cycle() -> Callable[[], list[int]]:
    """The same cycle through pymodbus 3.16.1's framers, decoders and SimDevice datastore."""
    bits = [SimData(0, values=[False] * 16, datatype=DataType.BITS)]
    device = SimDevice(
        1,
        simdata=(
            bits,
            list(bits),
            [SimData(1, values=[2300, 1], datatype=DataType.REGISTERS)],
            [SimData(0, values=PZEM_REGISTERS, datatype=DataType.REGISTERS)],
        ),
    )
    context = SimCore([device])
    server_framer = FramerRTU(DecodePDU(True))
    client_framer = FramerRTU(DecodePDU(False))

    def cycle() -> list[int]:
        request = ReadInputRegistersRequest(address=0, count=10, dev_id=1)
        wire = client_framer.buildFrame(request)
        _, received = server_framer.handleFrame(wire, 0, 0)
        assert received is not None
        response = _run_coroutine(received.datastore_update(context, received.dev_id))  # type: ignore[arg-type]
        response.dev_id = received.dev_id
        _, reply = client_framer.handleFrame(server_framer.buildFrame(response), 1, 0)
        assert reply is not None
        registers: list[int] = reply.registers  # type: ignore[assignment]
        return registers

    return cycle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short run (CI smoke)")
    args = parser.parse_args(argv)
    rounds = 5 if args.quick else 50
    min_time_s, repeats = (0.05, 3) if args.quick else (0.3, 7)

    print(f"Modbus RTU bus at {BAUD_RATE} Bd 8N1 on the simulated line (virtual time)")
    rows = []
    for profile, units, reply_chars in (("pzem004t", 10, 25), ("pmtr3", 3, 5 + 2 * 58)):
        rate, limit, cpu_s = bus_throughput(profile, units, rounds, reply_chars)
        reads = units * rounds
        print(
            f"  {units} x {profile}: {rate:.3f} reads/s, wire limit {limit:.3f} reads/s "
            f"(request 8 B + reply {reply_chars} B + 2 x t3.5): ratio {rate / limit:.4f}; "
            f"{reads} reads simulated in {cpu_s:.2f} s CPU ({cpu_s / reads * 1e3:.2f} ms CPU per read)"
        )
        rows.append(
            Comparison(f"{profile} reads on the bus", "reads/s", rate, "wire limit", limit, target=0.95)
        )

    ours_cycle, theirs_cycle = metercom_cycle(), pymodbus_cycle()
    if ours_cycle() != PZEM_REGISTERS or theirs_cycle() != PZEM_REGISTERS:
        print("a cycle returned the wrong registers", file=sys.stderr)
        return 1
    ours = ops_per_second(ours_cycle, min_time_s=min_time_s, repeats=repeats)
    theirs = ops_per_second(theirs_cycle, min_time_s=min_time_s, repeats=repeats)
    print("CPU per full client+server cycle, read 10 input registers (in memory, no event loop)")
    for label, rate in (
        ("metercom (pymodbus PDUs + RtuFramer + simulated PZEM)", ours),
        ("pymodbus 3.16.1 (FramerRTU + SimDevice datastore)", theirs),
    ):
        print(f"  {label:55s} {rate:>10,.0f} cycles/s, {1e6 / rate:.1f} us")
    rows.append(Comparison("client+server cycle", "cycles/s", ours, "pymodbus 3.16.1", theirs))
    print(report("Ratios", rows))
    return 0 if all(row.verdict != "BELOW TARGET" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
