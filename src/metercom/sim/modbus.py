"""Modbus device simulators: PZEM-004T and pmtr3 units, several on one bus, over RTU or TCP.

Rule: a simulated device is its profile (``metercom.model.modbus_profile``) served from the
server side: the same register map the client reads, with pymodbus PDU classes decoding the
requests and encoding the replies, and metercom's framers and transports carrying them. So the
simulator runs unchanged on TCP (Modbus TCP or RTU tunnelled over TCP), on a pty any serial
program can open, and on the simulated line with the timing of a real RS-485 bus.

Theory of operation:

* :class:`SimulatedModbusDevice` keeps the input and holding registers its profile defines
  (addresses outside the profile answer ILLEGAL DATA ADDRESS; the reserved gaps inside a
  ``[[read]]`` block read as 0). Before each request it brings its values up to the present:
  per-phase values come from a :class:`PhaseValueSource` (a callable: :class:`StaticPhaseValues`,
  the default, gives the values of the protocols.md reply vector; :class:`LoadModelValues`
  takes them from the household load model of ``metercom.sim.load``), energy is integrated
  from power over the running clock's time (virtual in tests), the power alarm follows the
  threshold, and relay action slots whose trigger has come are executed.
* Behaviour follows the profile's features, so one class serves both devices: an address
  register (the reply comes from the old address, then the device listens on the new one), an
  alarm threshold, energy reset (0x42), and for pmtr3 the clock (Unix time, written in one
  request), line-to-neutral or line-to-line voltages, relays (relay ``load_relay`` carries the
  load: open, it reads 0 A), action slots and an event ring. Writes are validated before any
  register changes, so a refused write changes nothing.
* :class:`ModbusBus` holds the units of one link. Unit 0 is broadcast (writes executed by all,
  no reply); 0xF8 is the PZEM "general" address, answered only when one device is on the bus;
  a request for a unit nobody has is not answered on RTU and answered with exception 0x0B
  (gateway target failed to respond) on Modbus TCP, as a gateway would.
* RTU serving: requests are framed by :class:`~metercom.codec.modbus.rtu.RtuFramer` in the
  server role; corrupt frames are ignored (a Modbus slave stays silent on a CRC error); the
  reply starts t3.5 after the request's last byte (plus ``response_delay_s``), the silence a
  slave must leave before it transmits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Final, Protocol

from pymodbus.constants import ExcCodes
from pymodbus.pdu import DecodePDU, ExceptionResponse, ModbusPDU
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersResponse,
    ReadInputRegistersResponse,
    WriteMultipleRegistersResponse,
    WriteSingleRegisterResponse,
)

from metercom.clock import current_clock
from metercom.codec.base import NEED_DATA, Role
from metercom.codec.modbus import (
    GENERAL_ADDRESS,
    RESET_ENERGY_FUNCTION,
    Adu,
    MbapFramer,
    Noise,
    RtuFramer,
    encode_rtu,
    rtu_silence_s,
)
from metercom.errors import ConnectionLost, InputError, RemoteProtocolError, TransportTimeout
from metercom.model.modbus_profile import (
    Field,
    ModbusProfile,
    Point,
    RegisterTable,
    RuleSlotSpec,
    load_modbus_profile,
)
from metercom.model.rules import (
    Command,
    Rule,
    RuleEngine,
    RuleSlotError,
    RuleState,
    RuleTransition,
    parse_image,
    run_program,
)
from metercom.model.rules.slots import image_of_registers, program_of_image, relay_outputs, slot_crc
from metercom.session.modbus import Framing, ResetEnergyPdu, line_silence_s
from metercom.sim.fleet import LinkFaults
from metercom.sim.load import Feeder, Household, LoadConfig, LoadModel
from metercom.transport import PtyTransport, SimulatedLine, Transport, TransportServer, open_pty, serve

__all__ = [
    "LoadModelValues",
    "ModbusBus",
    "PhaseValueSource",
    "PhaseValues",
    "SimulatedModbusDevice",
    "StaticPhaseValues",
    "build_bus",
    "stop_serving",
]

log = logging.getLogger(__name__)

#: Energy a new simulated device starts with (Wh); matches the PZEM reply vector of protocols.md 5.1.
DEFAULT_ENERGY_WH: Final = 12345.0
#: Alarm threshold a new device starts with (W); the PZEM's factory default is 2300 W.
DEFAULT_ALARM_THRESHOLD_W: Final = 2300
#: Firmware version pmtr3 simulators report (major.minor in high.low byte).
FIRMWARE_VERSION: Final = 0x0100
#: How often a device with rule slots samples its values and evaluates its rules (ms of device time).
RULE_SAMPLE_PERIOD_MS: Final = 1000
#: Most rule samples one catch-up evaluates; after a longer silence older seconds are skipped.
MAX_RULE_CATCH_UP: Final = 86_400
#: Rule slot ``result`` register values.
RULE_FALSE, RULE_TRUE, RULE_UNDECIDED, RULE_IDLE = 0, 1, 2, 3
#: Rule slot image format version the simulated pmtr3 evaluates.
RULE_FORMAT: Final = 1

_QUANTITIES: Final = (
    "voltage",
    "current",
    "active_power",
    "active_energy",
    "frequency",
    "power_factor",
    "alarm",
)


@dataclass(frozen=True, slots=True)
class PhaseValues:
    """Instantaneous values of one phase. ``power_w`` ``None``: voltage x current x power factor."""

    voltage_v: float = 230.0
    current_a: float = 1.234
    frequency_hz: float = 50.0
    power_factor: float = 0.99
    power_w: float | None = 283.8

    @property
    def active_power_w(self) -> float:
        if self.power_w is not None:
            return self.power_w
        return self.voltage_v * self.current_a * self.power_factor


class PhaseValueSource(Protocol):
    """Where a simulated device takes its per-phase values from (phase 1..3, at ``now``)."""

    def __call__(self, phase: int, now: datetime) -> PhaseValues: ...


class StaticPhaseValues:
    """The same values at every moment: one set for all phases, or one per phase."""

    def __init__(self, values: PhaseValues | Mapping[int, PhaseValues] | None = None) -> None:
        self._default = PhaseValues()
        self._per_phase: dict[int, PhaseValues] = {}
        if isinstance(values, PhaseValues):
            self._default = values
        elif values is not None:
            self._per_phase = dict(values)

    def set(self, phase: int, values: PhaseValues) -> None:
        """Change the values of ``phase`` from now on."""
        self._per_phase[phase] = values

    def __call__(self, phase: int, now: datetime) -> PhaseValues:
        del now  # static: the same at every moment
        return self._per_phase.get(phase, self._default)


class LoadModelValues:
    """Per-phase values from a :class:`~metercom.sim.load.LoadModel` (one snapshot per instant).

    A PZEM cannot tell the direction of power: power and power factor are reported as
    magnitudes. A model with fewer phases than the device repeats its phases (L1 for all).
    """

    def __init__(self, model: LoadModel) -> None:
        self.model = model
        self._at: datetime | None = None
        self._values: tuple[PhaseValues, ...] = ()

    @classmethod
    def household(cls, phases: int, seed: int, start: datetime) -> LoadModelValues:
        """The seed household on one phase, or one such household per phase for 3-phase devices."""
        return cls(LoadModel(_household_config(phases), seed=seed, start=start))

    def __call__(self, phase: int, now: datetime) -> PhaseValues:
        if now != self._at:
            snapshot = self.model.snapshot(now)
            self._values = tuple(
                PhaseValues(
                    voltage_v=p.voltage_v,
                    current_a=p.current_a,
                    frequency_hz=snapshot.frequency_hz,
                    power_factor=abs(p.power_factor),
                    power_w=abs(p.active_power_w),
                )
                for p in snapshot.phases
            )
            self._at = now
        return self._values[(phase - 1) % len(self._values)]


@cache
def _household_config(phases: int) -> LoadConfig:
    # Compiled once and shared by every simulated device (the load model's rule).
    household = Household.seed_example()
    return LoadConfig(household if phases == 1 else Feeder(household, (1, 1, 1)))


class _Rejected(Exception):
    """A request the device refuses with Modbus exception ``code``."""

    def __init__(self, code: ExcCodes, reason: str) -> None:
        self.code = code
        super().__init__(reason)


#: Phase quantities a device with rule slots samples: (profile quantity, rule suffix).
_RULE_QUANTITIES: Final = (
    ("voltage", "U"),
    ("current", "I"),
    ("active_power", "p"),
    ("active_energy", "e"),
    ("frequency", "f"),
    ("power_factor", "pf"),
)


@dataclass(slots=True)
class _RuleSlot:
    """A rule slot the device holds: the accepted image, its program and the slot's status."""

    rule: Rule
    image: bytes
    program: bytes
    triggered: bool = False
    result: int = RULE_IDLE
    triggered_count: int = 0
    changed_at: int = 0


class SimulatedModbusDevice:
    """One simulated unit; see the module docstring."""

    def __init__(
        self,
        profile: ModbusProfile | str,
        unit: int,
        *,
        values: PhaseValueSource | None = None,
        energy_wh: float | Sequence[float] = DEFAULT_ENERGY_WH,
        alarm_threshold_w: int = DEFAULT_ALARM_THRESHOLD_W,
        integrate_energy: bool = True,
        refresh_period_s: float = 1.0,
        start: datetime | None = None,
    ) -> None:
        self.profile = load_modbus_profile(profile) if isinstance(profile, str) else profile
        if not 1 <= unit <= 247:
            raise InputError(f"a simulated device needs an address 1..247, got {unit}")
        self.unit = unit
        self.values: PhaseValueSource = values or StaticPhaseValues()
        phases = self.profile.phases
        energies = [float(energy_wh)] * phases if isinstance(energy_wh, (int, float)) else list(energy_wh)
        if len(energies) != phases:
            raise InputError(f"energy_wh needs {phases} values for {self.profile.name}, got {len(energies)}")
        self.energy_wh = energies
        self.integrate_energy = integrate_energy
        #: Measured values are recomputed at most this often (a PZEM refreshes about once a
        #: second), and at once after any write; the clock and action slots are always current.
        self.refresh_period_s = refresh_period_s
        self.clock_offset_s = 0.0
        #: Fault: the device clock runs this many parts per million fast (negative: slow).
        self.clock_drift_ppm = 0.0
        self._drift_since_s = current_clock().monotonic()
        self._dirty = True
        self._slots_armed = False
        self.requests = 0
        self._last_update_s: float | None = None
        self._alarms = [False] * phases
        self._input: dict[int, int] = {}
        self._holding: dict[int, int] = {}
        self._writable: set[int] = set()
        self._points_at: dict[tuple[RegisterTable, int], Point] = {}
        self._phase_points: dict[tuple[int, str], Point] = {}
        self._build_registers()
        self._set_point_raw(self.profile.address_point, unit)
        self._set_point_raw(self.profile.alarm_threshold_point, alarm_threshold_w)
        if self.profile.relays is not None and self.profile.relays.load_relay is not None:
            self._set_point_raw(self.profile.relays.state, 1 << (self.profile.relays.load_relay - 1))
        if self.profile.has_point("firmware_version"):
            self._set_point_raw("firmware_version", FIRMWARE_VERSION)
        probe = self.profile.identify
        if probe.expect is not None:
            store = self._table(probe.table)
            for i, value in enumerate(probe.expect):
                store[probe.address + i] = value
        if self.profile.event_log is not None:
            cap = self.profile.event_log.capacity
            if self.profile.has_point("event_capacity"):
                self._set_point_raw("event_capacity", cap)
            self._log("power_on", 0, time=start)
        if self.profile.relays is not None and self.profile.has_point("relay_count"):
            self._set_point_raw("relay_count", self.profile.relays.count)
        self._rule_spec: RuleSlotSpec | None = (
            self.profile.relays.rules if self.profile.relays is not None else None
        )
        self._rules: dict[int, _RuleSlot] = {}
        self._rule_engine = RuleEngine(max_slots=1, evaluate=self._run_rule_program)
        self._rule_next_unix: int | None = None
        #: Rule slot writes the device accepted that changed a slot (for tests: "writes once").
        self.rule_slot_writes = 0
        if self._rule_spec is not None:
            spec = self._rule_spec
            for name, value in (
                ("rule_slot_count", spec.slots.count),
                ("rule_image_bytes", spec.image_bytes),
                ("rule_format", RULE_FORMAT),
                ("rule_sample_period", RULE_SAMPLE_PERIOD_MS),
            ):
                self._set_point_raw(name, value)
            for index in range(spec.slots.count):
                self._set_rule_status(index, None)

    def __repr__(self) -> str:
        return f"<SimulatedModbusDevice {self.profile.name} unit {self.unit}>"

    # -- register store --------------------------------------------------------------------------

    def _table(self, table: RegisterTable) -> dict[int, int]:
        return self._input if table is RegisterTable.INPUT else self._holding

    def _build_registers(self) -> None:
        profile = self.profile
        for block in profile.read_blocks:
            for address in range(block.address, block.end):
                self._table(block.table)[address] = 0
        for point in profile.points:
            store = self._table(point.table)
            for address in range(point.address, point.address + point.width):
                store[address] = 0
                self._points_at[(point.table, address)] = point
                if point.writable:
                    self._writable.add(address)
            quantity = point.name.rsplit(".", 1)[-1]
            if quantity in _QUANTITIES:
                self._phase_points[(point.phase or 1, quantity)] = point
        relays = profile.relays
        if relays is not None and relays.slots is not None:
            for address in range(relays.slots.base, relays.slots.end):
                self._holding[address] = 0
                self._writable.add(address)
        if profile.event_log is not None:
            for address in range(profile.event_log.entries.base, profile.event_log.entries.end):
                self._holding[address] = 0
        rule_spec = relays.rules if relays is not None else None
        if rule_spec is not None:
            for address in range(rule_spec.slots.base, rule_spec.slots.end):
                self._holding[address] = 0
                self._writable.add(address)
            for address in range(rule_spec.status.base, rule_spec.status.end):
                self._holding[address] = 0

    def _set_point_raw(self, name: str | None, raw: int) -> None:
        if name is None or not self.profile.has_point(name):
            return
        point = self.profile.point(name)
        store = self._table(point.table)
        for i, register in enumerate(_split(raw, point)):
            store[point.address + i] = register

    def _point_raw(self, name: str) -> int:
        point = self.profile.point(name)
        store = self._table(point.table)
        registers = [store[point.address + i] for i in range(point.width)]
        return _combine(registers, point)

    def registers(self, table: RegisterTable | str, address: int, count: int) -> list[int]:
        """Current register contents (after bringing values up to date), for tests and tools."""
        self.update(force=True)
        store = self._table(RegisterTable(table))
        return [store[a] for a in range(address, address + count)]

    # -- time and values -------------------------------------------------------------------------

    def device_time(self) -> datetime:
        """The device's clock (the running clock plus any offset set over Modbus)."""
        return datetime.fromtimestamp(current_clock().now().timestamp() + self.clock_shift_s(), UTC)

    def clock_shift_s(self) -> float:
        """How far the device clock is ahead of the running clock: offset plus drift."""
        if not self.clock_drift_ppm:
            return self.clock_offset_s
        elapsed_s = current_clock().monotonic() - self._drift_since_s
        return self.clock_offset_s + elapsed_s * self.clock_drift_ppm * 1e-6

    def set_clock_drift(self, ppm: float, offset_s: float = 0.0) -> None:
        """Fault: from now the clock is ``offset_s`` off and runs ``ppm`` fast (negative: slow)."""
        self.clock_offset_s = offset_s
        self.clock_drift_ppm = ppm
        self._drift_since_s = current_clock().monotonic()

    def update(self, *, force: bool = False) -> None:
        """Bring action slots, the clock and (when due, see ``refresh_period_s``) values up to now."""
        clock = current_clock()
        now_s = clock.monotonic()
        now = clock.now()
        if self._slots_armed:
            self._run_action_slots(now)
        if self._rules:
            self._run_rules(now_s, now)
        last = self._last_update_s
        if force or self._dirty or last is None or now_s - last >= self.refresh_period_s:
            self._refresh_values(now_s, now)
        self._update_status()

    def _refresh_values(self, now_s: float, now: datetime) -> None:
        self._dirty = False
        elapsed_s = 0.0 if self._last_update_s is None else max(0.0, now_s - self._last_update_s)
        self._last_update_s = now_s
        profile = self.profile
        load_closed = self._load_closed()
        threshold = self._point_raw(profile.alarm_threshold_point) if profile.alarm_threshold_point else None
        raw_v: list[float] = []
        for phase in range(1, profile.phases + 1):
            values = self.values(phase, now)
            power_w = values.active_power_w if load_closed else 0.0
            current_a = values.current_a if load_closed else 0.0
            power_factor = values.power_factor if load_closed else 0.0
            if self.integrate_energy:
                self.energy_wh[phase - 1] += power_w * elapsed_s / 3600.0
            raw_v.append(values.voltage_v)
            self._set_quantity(phase, "current", current_a)
            self._set_quantity(phase, "active_power", power_w)
            self._set_quantity(phase, "frequency", values.frequency_hz)
            self._set_quantity(phase, "power_factor", power_factor)
            energy_point = self._phase_points.get((phase, "active_energy"))
            if energy_point is not None:
                # An energy counter counts whole units: truncate, never round up.
                raw = math.floor(self.energy_wh[phase - 1] / 1000 / float(energy_point.scale) + 1e-9)
                self._write_raw(energy_point, min(raw, 0xFFFFFFFF))
            alarm = threshold is not None and power_w > threshold
            if alarm != self._alarms[phase - 1]:
                self._alarms[phase - 1] = alarm
                self._log("alarm_on" if alarm else "alarm_off", phase)
            alarm_point = self._phase_points.get((phase, "alarm"))
            if alarm_point is not None:
                self._write_raw(alarm_point, 0xFFFF if alarm else 0)
        line_to_line = self._line_to_line()
        for phase in range(1, profile.phases + 1):
            voltage = raw_v[phase - 1]
            if line_to_line and profile.phases == 3:
                other = raw_v[phase % 3]
                # Phasors 120 degrees apart: |Va - Vb| = sqrt(Va^2 + Vb^2 + Va*Vb).
                voltage = math.sqrt(voltage * voltage + other * other + voltage * other)
            self._set_quantity(phase, "voltage", voltage)

    def _set_quantity(self, phase: int, quantity: str, value: float) -> None:
        point = self._phase_points.get((phase, quantity))
        if point is not None:
            # Float arithmetic on the hot path (Point.clamp is exact but slower): the simulated
            # quantity is a float anyway, and round() is round-half-even like the Decimal path.
            raw = round(max(value, 0.0) / float(point.scale))
            self._write_raw(point, min(raw, (1 << (16 * point.width)) - 1))

    def _write_raw(self, point: Point, raw: int) -> None:
        store = self._table(point.table)
        for i, register in enumerate(_split(raw, point)):
            store[point.address + i] = register

    def _load_closed(self) -> bool:
        relays = self.profile.relays
        if relays is None or relays.load_relay is None:
            return True
        return bool(self._point_raw(relays.state) >> (relays.load_relay - 1) & 1)

    def _line_to_line(self) -> bool:
        mode = self.profile.voltage_mode
        return mode is not None and self._point_raw(mode.setting) == mode.line_to_line

    def _update_status(self) -> None:
        profile = self.profile
        if profile.voltage_mode is not None:
            self._set_point_raw(profile.voltage_mode.mirror, self._point_raw(profile.voltage_mode.setting))
        if profile.relays is not None and profile.relays.mirror is not None:
            self._set_point_raw(profile.relays.mirror, self._point_raw(profile.relays.state))
        if profile.event_log is not None and profile.has_point("event_count"):
            self._set_point_raw("event_count", self._point_raw(profile.event_log.count))
        if profile.clock is not None:
            unix = int(self.device_time().timestamp())
            self._set_point_raw(profile.clock.point, unix)
            if profile.clock.mirror is not None:
                self._set_point_raw(profile.clock.mirror, unix)

    # -- event log and actions -------------------------------------------------------------------

    def _log(self, name: str, detail: int, *, time: datetime | None = None) -> None:
        log_spec = self.profile.event_log
        if log_spec is None:
            return
        code = next((c for c, label in log_spec.codes.items() if label == name), None)
        if code is None:
            return  # the profile does not log this kind of event
        seq = self._point_raw(log_spec.count) + 1
        when = time or self.device_time()
        fields = {"seq": seq, "time": int(when.timestamp()), "code": code, "detail": detail & 0xFFFF}
        base = log_spec.entries.address(log_spec.index_of(seq))
        for item in log_spec.entries.fields:
            for i, register in enumerate(_split(fields[item.name], item)):
                self._holding[base + item.offset + i] = register
        self._set_point_raw(log_spec.count, seq)

    def events(self) -> list[tuple[int, str, int]]:
        """(seq, event name, detail) of the entries still in the ring, oldest first (for tests)."""
        log_spec = self.profile.event_log
        if log_spec is None:
            return []
        newest = self._point_raw(log_spec.count)
        out = []
        for seq in range(max(1, newest - log_spec.capacity + 1), newest + 1):
            base = log_spec.entries.address(log_spec.index_of(seq))
            fields = {
                item.name: _combine([self._holding[base + item.offset + i] for i in range(item.width)], item)
                for item in log_spec.entries.fields
            }
            out.append(
                (fields["seq"], log_spec.codes.get(fields["code"], str(fields["code"])), fields["detail"])
            )
        return out

    def _run_action_slots(self, now: datetime) -> None:
        relays = self.profile.relays
        if relays is None or relays.slots is None:
            return
        layout = relays.slots
        device_unix = int(now.timestamp() + self.clock_shift_s())
        armed = False
        for index in range(layout.count):
            base = layout.address(index)
            fields = {
                item.name: _combine([self._holding[base + item.offset + i] for i in range(item.width)], item)
                for item in layout.fields
            }
            if not fields["enabled"] or fields["state"] or not 1 <= fields["relay"] <= relays.count:
                continue
            armed = True
            trigger = relays.triggers.get(fields["trigger"])
            parameter = fields["parameter"]
            if trigger == "at_time":
                fire = device_unix >= parameter
                when = datetime.fromtimestamp(parameter, UTC) if fire else None
            elif trigger in ("power_above", "power_below"):
                total_w = sum(self.values(p, now).active_power_w for p in range(1, self.profile.phases + 1))
                if not self._load_closed():
                    total_w = 0.0
                fire = total_w > parameter if trigger == "power_above" else total_w < parameter
                when = None
            else:
                continue
            if not fire:
                continue
            close = relays.actions.get(fields["action"]) == "close"
            self._switch_relay(fields["relay"], close, time=when)
            self._log("action_fired", index, time=when)
            state = layout.field("state")
            self._holding[base + state.offset] = 1
        self._slots_armed = armed

    def _switch_relay(self, relay: int, close: bool, *, time: datetime | None = None) -> None:
        relays = self.profile.relays
        if relays is None:
            return
        mask = self._point_raw(relays.state)
        new_mask = mask | (1 << (relay - 1)) if close else mask & ~(1 << (relay - 1))
        if new_mask != mask:
            self._set_point_raw(relays.state, new_mask)
            self._dirty = True  # the load relay changes what the meter measures
            self._log("relay_closed" if close else "relay_opened", relay, time=time)

    # -- rules the device evaluates itself (pmtr3 [relays.rules]) -----------------------------------

    def _write_rule_slot(self, spec: RuleSlotSpec, address: int, values: list[int]) -> None:
        """A whole rule slot in one request: validated (length, CRC, image) before anything changes."""
        layout = spec.slots
        index = (address - layout.base) // layout.size
        if address < layout.base or address != layout.address(index):
            raise _Rejected(ExcCodes.ILLEGAL_ADDRESS, "a rule slot is written from its first register")
        fields = {
            item.name: _combine(values[item.offset : item.offset + item.width], item)
            for item in layout.fields
            if item.offset + item.width <= len(values)
        }
        length = fields.get("length")
        if length is None or "crc" not in fields:
            raise _Rejected(ExcCodes.ILLEGAL_VALUE, "rule slot header incomplete")
        if length > spec.image_bytes:
            raise _Rejected(
                ExcCodes.ILLEGAL_VALUE, f"rule image of {length} bytes, at most {spec.image_bytes}"
            )
        expected = spec.image_offset + (length + 1) // 2
        if len(values) != expected:
            raise _Rejected(
                ExcCodes.ILLEGAL_VALUE, f"rule slot {index}: write {expected} registers, got {len(values)}"
            )
        relays = self.profile.relays
        assert relays is not None  # noqa: S101 - a rule spec lives in [relays]
        image = b""
        rule: Rule | None = None
        try:
            image = image_of_registers(values[spec.image_offset :], length)
            if slot_crc(image) != fields["crc"]:
                raise RuleSlotError(
                    f"CRC 0x{fields['crc']:08X} does not match the image (0x{slot_crc(image):08X})"
                )
            if image:
                rule = parse_image(image, relay_outputs(relays.count))
        except RuleSlotError as exc:
            raise _Rejected(ExcCodes.ILLEGAL_VALUE, f"rule slot {index}: {exc}") from None
        current = self._rules.get(index)
        if (current.image if current is not None else b"") == image:
            return  # the same rule again: state, averages and counters stay
        base = layout.address(index)
        for i in range(layout.size):
            self._holding[base + i] = values[i] if i < len(values) else 0
        self.rule_slot_writes += 1
        key = str(index)
        self._rule_engine.remove(key)
        if rule is None:
            self._rules.pop(index, None)
            self._set_rule_status(index, None)
        else:
            slot = _RuleSlot(rule, image, program_of_image(image))
            self._rules[index] = slot
            self._rule_engine.configure(key, [rule])
            self._set_rule_status(index, slot)
            if self._rule_next_unix is None:
                self._rule_next_unix = int(self.device_time().timestamp()) + 1
        self._log("rule_slot_written", index)

    def _run_rule_program(self, rule: Rule, values: Mapping[str, Decimal]) -> bool:
        program = next(s.program for s in self._rules.values() if s.rule is rule)
        return run_program(program, values, validated=True)

    def _restart_rules(self) -> None:
        """After the clock was set: averages and states start afresh from the next whole second."""
        for index, slot in self._rules.items():
            self._rule_engine.remove(str(index))
            self._rule_engine.configure(str(index), [slot.rule])
            slot.triggered = False
            slot.result = RULE_IDLE
            self._set_rule_status(index, slot)
        self._rule_next_unix = None if not self._rules else int(self.device_time().timestamp()) + 1

    def _run_rules(self, now_s: float, now: datetime) -> None:
        """Evaluate the rule slots at every whole second of device time up to now (catching up)."""
        shift_s = self.clock_shift_s()
        device_now = int(now.timestamp() + shift_s)
        next_unix = self._rule_next_unix
        if next_unix is None:
            next_unix = device_now
        next_unix = max(next_unix, device_now - MAX_RULE_CATCH_UP + 1)
        for unix in range(next_unix, device_now + 1):
            # The instant, on the running clock, at which the device clock read ``unix``.
            sample_s = now_s - (now.timestamp() + shift_s - unix)
            last = self._last_update_s
            at_s = sample_s if last is None else max(sample_s, last)
            self._refresh_values(at_s, now - timedelta(seconds=now_s - at_s))
            self._evaluate_rules(datetime.fromtimestamp(unix, UTC))
        self._rule_next_unix = device_now + 1

    def _rule_values(self) -> dict[str, Decimal]:
        """The rule quantities of the registers as they are now (what a read would return)."""
        values: dict[str, Decimal] = {}
        line_to_line = self._line_to_line()
        for phase in range(1, self.profile.phases + 1):
            for quantity, suffix in _RULE_QUANTITIES:
                point = self._phase_points.get((phase, quantity))
                if point is None or (suffix == "U" and line_to_line):
                    continue
                raw = _combine(
                    [self._table(point.table)[point.address + i] for i in range(point.width)], point
                )
                values[f"L{phase}{suffix}"] = Decimal(raw) * point.scale
        for suffix in ("U", "I", "p", "e"):
            phases = [values[f"L{n}{suffix}"] for n in (1, 2, 3) if f"L{n}{suffix}" in values]
            if phases:
                total = sum(phases, Decimal(0))
                values[f"T{suffix}"] = total / len(phases) if suffix == "U" else total
        if "L1f" in values:
            values["Tf"] = values["L1f"]
        return values

    def _evaluate_rules(self, at: datetime) -> None:
        values = self._rule_values()
        for index in sorted(self._rules):
            slot = self._rules[index]
            transitions = self._rule_engine.observe(str(index), at, values)
            status = self._rule_engine.status(str(index))
            result = status[0].last_result if status else None
            if not slot.rule.enabled:
                slot.result = RULE_IDLE
            else:
                slot.result = RULE_UNDECIDED if result is None else (RULE_TRUE if result else RULE_FALSE)
            for transition in transitions:
                self._rule_transition(index, slot, transition)
            self._set_rule_status(index, slot)

    def _rule_transition(self, index: int, slot: _RuleSlot, transition: RuleTransition) -> None:
        triggered = transition.state is RuleState.TRIGGERED
        slot.triggered = triggered
        slot.changed_at = int(transition.at.timestamp())
        if triggered:
            slot.triggered_count += 1
        if transition.dry_run:
            self._log(
                "rule_dry_run_triggered" if triggered else "rule_dry_run_recovered", index, time=transition.at
            )
            return
        close = transition.command in (Command.CONNECT, Command.HIGH)
        for target in transition.targets:
            self._switch_relay(int(target.removeprefix("relay")), close, time=transition.at)
        self._log("rule_triggered" if triggered else "rule_recovered", index, time=transition.at)

    def _set_rule_status(self, index: int, slot: _RuleSlot | None) -> None:
        spec = self._rule_spec
        if spec is None:
            return
        fields = {
            "state": int(slot.triggered) if slot is not None else 0,
            "result": slot.result if slot is not None else RULE_IDLE,
            "triggered_count": slot.triggered_count if slot is not None else 0,
            "changed_at": slot.changed_at if slot is not None else 0,
            "crc": slot_crc(slot.image) if slot is not None else 0,
        }
        base = spec.status.address(index)
        for item in spec.status.fields:
            for i, register in enumerate(_split(fields[item.name], item)):
                self._holding[base + item.offset + i] = register

    def rule_status(self, index: int) -> dict[str, int]:
        """The status registers of rule slot ``index`` (for tests and tools)."""
        spec = self._rule_spec
        if spec is None:
            raise InputError(f"profile {self.profile.name} has no rule slots")
        self.update()
        base = spec.status.address(index)
        return {
            item.name: _combine([self._holding[base + item.offset + i] for i in range(item.width)], item)
            for item in spec.status.fields
        }

    # -- requests --------------------------------------------------------------------------------

    def execute(self, request: ModbusPDU) -> ModbusPDU:
        """Handle one decoded request; returns the reply (an ExceptionResponse on refusal)."""
        self.requests += 1
        function = request.function_code
        try:
            if function not in self.profile.functions:
                raise _Rejected(ExcCodes.ILLEGAL_FUNCTION, f"function 0x{function:02X} not supported")
            self.update()
            if function in (0x03, 0x04):
                table = RegisterTable.INPUT if function == 0x04 else RegisterTable.HOLDING
                registers = self._read(table, request.address, request.count)
                response_class = (
                    ReadInputRegistersResponse if function == 0x04 else ReadHoldingRegistersResponse
                )
                return response_class(registers=registers, dev_id=self.unit)
            if function == 0x06:
                self._write(request.address, list(request.registers))
                return WriteSingleRegisterResponse(
                    address=request.address, registers=list(request.registers), dev_id=self.unit
                )
            if function == 0x10:
                if request.count != len(request.registers) or not 1 <= request.count <= 123:
                    raise _Rejected(ExcCodes.ILLEGAL_VALUE, "quantity and byte count disagree")
                self._write(request.address, list(request.registers))
                return WriteMultipleRegistersResponse(
                    address=request.address, count=request.count, dev_id=self.unit
                )
            if function == RESET_ENERGY_FUNCTION:
                self.update(force=True)  # integrate up to now before the counters go to zero
                self.energy_wh = [0.0] * self.profile.phases
                self._log("energy_reset", (1 << self.profile.phases) - 1)
                self.update(force=True)
                return ResetEnergyPdu(dev_id=self.unit)
            raise _Rejected(ExcCodes.ILLEGAL_FUNCTION, f"function 0x{function:02X} not supported")
        except _Rejected as exc:
            log.debug("%r refuses function 0x%02X: %s", self, function, exc)
            return ExceptionResponse(function, exc.code, device_id=self.unit)

    def _read(self, table: RegisterTable, address: int, count: int) -> list[int]:
        if not 1 <= count <= 125:
            raise _Rejected(ExcCodes.ILLEGAL_VALUE, f"quantity {count} outside 1..125")
        store = self._table(table)
        try:
            return [store[a] for a in range(address, address + count)]
        except KeyError:
            raise _Rejected(ExcCodes.ILLEGAL_ADDRESS, f"{table} 0x{address:04X}+{count} not mapped") from None

    def _write(self, address: int, values: list[int]) -> None:
        """Validate the whole write, then apply it and its side effects."""
        addresses = range(address, address + len(values))
        spec = self._rule_spec
        if spec is not None and address < spec.slots.end and spec.slots.base < addresses.stop:
            self._write_rule_slot(spec, address, values)
            return
        for a in addresses:
            if a not in self._writable:
                raise _Rejected(ExcCodes.ILLEGAL_ADDRESS, f"holding 0x{a:04X} is not writable")
        # Points touched: every one must be written whole (a 32-bit value in one request).
        staged = dict(self._holding)
        staged.update(zip(addresses, values, strict=True))
        touched: list[Point] = []
        for a in addresses:
            point = self._points_at.get((RegisterTable.HOLDING, a))
            if point is not None and point not in touched:
                if point.address < address or point.address + point.width > address + len(values):
                    raise _Rejected(
                        ExcCodes.ILLEGAL_VALUE,
                        f"{point.name} has {point.width} registers: write them together",
                    )
                touched.append(point)
        new_raw: dict[str, int] = {}
        for point in touched:
            raw = _combine([staged[point.address + i] for i in range(point.width)], point)
            if point.kind == "enum" and raw not in point.values:
                raise _Rejected(ExcCodes.ILLEGAL_VALUE, f"{point.name}: {raw} is not a known value")
            if (point.minimum is not None and raw < point.minimum) or (
                point.maximum is not None and raw > point.maximum
            ):
                raise _Rejected(ExcCodes.ILLEGAL_VALUE, f"{point.name}: {raw} out of range")
            new_raw[point.name] = raw
        old_raw = {name: self._point_raw(name) for name in new_raw}
        relays = self.profile.relays
        slot_indices: set[int] = set()
        if relays is not None and relays.slots is not None:
            layout = relays.slots
            slot_indices = {
                (a - layout.base) // layout.size for a in addresses if layout.base <= a < layout.end
            }
        clock = self.profile.clock
        if clock is not None and clock.point in new_raw:
            # Setting the clock moves the offset; the register itself always reads the device time.
            self.clock_offset_s = new_raw[clock.point] - current_clock().now().timestamp()
            self._drift_since_s = current_clock().monotonic()  # the drift starts again from the set time
            self._log("clock_set", 0)
            self._restart_rules()
        relay_state = relays.state if relays is not None else None
        applied_elsewhere = {relay_state, clock.point if clock is not None else None}
        for a, value in zip(addresses, values, strict=True):
            point = self._points_at.get((RegisterTable.HOLDING, a))
            if point is None or point.name not in applied_elsewhere:
                self._holding[a] = value
        if relays is not None and relays.slots is not None:
            state_offset = relays.slots.field("state").offset
            for index in slot_indices:
                self._holding[relays.slots.address(index) + state_offset] = 0  # (re-)armed
        if relays is not None and relay_state in new_raw:
            new_mask = new_raw[relay_state]
            for relay in range(1, relays.count + 1):
                bit = 1 << (relay - 1)
                if (old_raw[relay_state] ^ new_mask) & bit:
                    self._switch_relay(relay, bool(new_mask & bit))
        mode = self.profile.voltage_mode
        if mode is not None and mode.setting in new_raw and new_raw[mode.setting] != old_raw[mode.setting]:
            self._log("voltage_mode_changed", new_raw[mode.setting])
        threshold = self.profile.alarm_threshold_point
        if threshold in new_raw and new_raw[threshold] != old_raw[threshold]:
            self._log("alarm_threshold_changed", new_raw[threshold])
        address_point = self.profile.address_point
        if address_point in new_raw and new_raw[address_point] != old_raw[address_point]:
            self._log("address_changed", new_raw[address_point])
        self._dirty = True
        self._slots_armed = self._slots_armed or bool(slot_indices)
        self._update_status()

    @property
    def configured_unit(self) -> int:
        """The address in the address register (becomes :attr:`unit` after the reply is sent)."""
        if self.profile.address_point is None:
            return self.unit
        return self._point_raw(self.profile.address_point)


def _split(value: int, item: Point | Field) -> list[int]:
    """An integer to registers (the inverse of :func:`_combine`; same result as convert_to_registers)."""
    if item.width == 1:
        return [value & 0xFFFF]
    value &= 0xFFFFFFFF
    low, high = value & 0xFFFF, value >> 16
    return [low, high] if item.word_order == "little" else [high, low]


def _combine(registers: Sequence[int], item: Point | Field) -> int:
    """Registers to an integer (the simulator's hot path; same result as convert_from_registers)."""
    if len(registers) == 1:
        value = registers[0]
    else:
        low, high = (
            (registers[0], registers[1]) if item.word_order == "little" else (registers[1], registers[0])
        )
        value = (high << 16) | low
    if item.signed:
        bits = 16 * len(registers)
        if value >= 1 << (bits - 1):
            value -= 1 << bits
    return value


@dataclass
class BusStats:
    """What a simulated bus saw."""

    frames: int = 0
    replies: int = 0
    corrupt_frames: int = 0
    #: Requests for units nobody on the bus has.
    unanswered: int = 0


class ModbusBus:
    """The units of one simulated link; serve it with :meth:`serve` on any transport."""

    def __init__(
        self, devices: Iterable[SimulatedModbusDevice] = (), *, response_delay_s: float = 0.0
    ) -> None:
        self.devices: dict[int, SimulatedModbusDevice] = {}
        self.response_delay_s = response_delay_s
        self.stats = BusStats()
        #: Fleet faults by unit: replies of that unit are corrupted or cut (see sim/fleet.py).
        self.unit_faults: dict[int, tuple[LinkFaults, random.Random]] = {}
        self._decoder = DecodePDU(True)
        self._decoder.register(ResetEnergyPdu)
        for device in devices:
            self.add(device)

    def __repr__(self) -> str:
        return f"<ModbusBus units {sorted(self.devices)}>"

    def add(self, device: SimulatedModbusDevice) -> SimulatedModbusDevice:
        if device.unit in self.devices:
            raise InputError(f"unit {device.unit} is already on this bus")
        self.devices[device.unit] = device
        return device

    def respond(self, unit: int, pdu: bytes, *, gateway: bool = False) -> bytes | None:
        """The reply PDU to request ``pdu`` for ``unit``, or ``None`` when nobody answers."""
        if not pdu:
            return None
        function = pdu[0]
        if unit == 0:
            for member in list(self.devices.values()):
                request = self._decode(pdu)
                if request is not None and function in (0x06, 0x10, RESET_ENERGY_FUNCTION):
                    member.execute(request)
                    self._rekey(member)
            return None
        device = self.devices.get(unit)
        if device is None and unit == GENERAL_ADDRESS and len(self.devices) == 1:
            device = next(iter(self.devices.values()))
        if device is None:
            self.stats.unanswered += 1
            if gateway:
                return bytes((function | 0x80, ExcCodes.GATEWAY_NO_RESPONSE))
            return None
        request = self._decode(pdu)
        if request is None:
            code = (
                ExcCodes.ILLEGAL_VALUE if function in self._decoder.pdu_table else ExcCodes.ILLEGAL_FUNCTION
            )
            return bytes((function | 0x80, code))
        reply = device.execute(request)
        out = bytes((reply.function_code,)) + reply.encode()
        self._rekey(device)
        return out

    def _faulty(self, unit: int, wire: bytes) -> tuple[bytes, bool]:
        """A reply after the unit's faults: maybe one byte flipped; True: cut it and close."""
        entry = self.unit_faults.get(unit)
        if entry is None:
            return wire, False
        faults, rng = entry
        wire = faults.outgoing(wire, rng)
        if faults.should_drop():
            faults.answers = 0
            return wire[: rng.randrange(len(wire))], True
        return wire, False

    async def _send(self, transport: Transport, unit: int, wire: bytes) -> bool:
        """Write a reply with the unit's faults applied; False when the link is (now) closed."""
        wire, drop = self._faulty(unit, wire)
        try:
            if wire:
                await transport.write(wire)
                await transport.drain()
        except ConnectionLost:
            return False
        if drop:
            log.debug("%s: unit %d drops the link (simulated fault)", transport.url, unit)
            await transport.close()
            return False
        self.stats.replies += 1
        return True

    def _decode(self, pdu: bytes) -> ModbusPDU | None:
        return self._decoder.decode(pdu)

    def _rekey(self, device: SimulatedModbusDevice) -> None:
        new_unit = device.configured_unit
        if new_unit != device.unit and new_unit not in self.devices:
            del self.devices[device.unit]
            device.unit = new_unit
            self.devices[new_unit] = device

    # -- serving ---------------------------------------------------------------------------------

    async def serve(
        self, transport: Transport, framing: Framing = "rtu", *, silence_s: float | None = None
    ) -> None:
        """Answer requests on ``transport`` until the peer closes it."""
        if framing == "tcp":
            await self._serve_tcp(transport)
        else:
            await self._serve_rtu(transport, silence_s)

    async def _serve_rtu(self, transport: Transport, silence_s: float | None) -> None:
        loop = asyncio.get_running_loop()
        framer = RtuFramer(
            Role.SERVER, silence_s=line_silence_s(transport) if silence_s is None else silence_s
        )
        line = transport.line
        gap_s = rtu_silence_s(line.baud_rate, line.bits_per_char) if line is not None else 0.0
        last_rx = float("-inf")
        while True:
            try:
                event = framer.next_event()
            except RemoteProtocolError as exc:
                self.stats.corrupt_frames += 1
                log.debug("%s: ignoring a corrupt request: %s", transport.url, exc)
                continue
            if event is NEED_DATA:
                deadline = framer.next_deadline()
                timeout_s = None if deadline is None else max(0.0, deadline - loop.time())
                try:
                    data = await transport.read(512, timeout_s=timeout_s)
                except TransportTimeout:
                    if deadline is not None:
                        framer.handle_timeout(max(loop.time(), deadline))
                    continue
                except ConnectionLost:
                    return
                last_rx = loop.time()
                framer.receive_data(data, last_rx)
                continue
            if isinstance(event, Noise):
                continue
            self.stats.frames += 1
            reply = self.respond(event.unit, event.pdu)
            if reply is None:
                continue
            # A slave leaves t3.5 of silence after the request before it transmits.
            wait_s = last_rx + gap_s + self.response_delay_s - loop.time()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            if not await self._send(transport, event.unit, encode_rtu(event.unit, reply)):
                return

    async def _serve_tcp(self, transport: Transport) -> None:
        framer = MbapFramer(Role.SERVER)
        while True:
            try:
                event = framer.next_event()
            except RemoteProtocolError as exc:
                self.stats.corrupt_frames += 1
                log.info("%s: closing: %s", transport.url, exc)
                return
            if event is NEED_DATA:
                try:
                    data = await transport.read(4096)
                except ConnectionLost:
                    return
                framer.receive_data(data)
                continue
            self.stats.frames += 1
            reply = self.respond(event.unit, event.pdu, gateway=True)
            if reply is None:
                continue
            if self.response_delay_s:
                await asyncio.sleep(self.response_delay_s)
            wire = framer.send(Adu(event.unit, reply, event.transaction_id))
            if not await self._send(transport, event.unit, wire):
                return

    async def serve_url(self, url: str = "tcp://127.0.0.1:0", framing: Framing = "tcp") -> TransportServer:
        """Listen on a TCP URL (Modbus TCP, or RTU over TCP with ``framing="rtu"``)."""

        async def handler(transport: Transport) -> None:
            await self.serve(transport, framing)

        return await serve(url, handler)

    async def serve_pty(self) -> tuple[PtyTransport, asyncio.Task[None]]:
        """Serve RTU on a new pty; clients open ``transport.slave_path`` like a serial port."""
        transport, _ = await open_pty()
        task = asyncio.get_running_loop().create_task(
            self.serve(transport, "rtu"), name="modbus pty simulator"
        )
        return transport, task

    def attach(self, line: SimulatedLine) -> asyncio.Task[None]:
        """Serve RTU on end ``b`` of a simulated line (end ``a`` is the master's)."""
        return asyncio.get_running_loop().create_task(
            self.serve(line.b, "rtu"), name=f"modbus bus on {line.name}"
        )


def build_bus(
    units: Mapping[int, str | ModbusProfile] | Iterable[tuple[int, str | ModbusProfile]],
    *,
    values: PhaseValueSource | None = None,
    response_delay_s: float = 0.0,
    **device_options: object,
) -> ModbusBus:
    """A bus with a device per ``unit -> profile`` entry."""
    items = units.items() if isinstance(units, Mapping) else units
    devices = [
        SimulatedModbusDevice(profile, unit, values=values, **device_options)  # type: ignore[arg-type]
        for unit, profile in items
    ]
    return ModbusBus(devices, response_delay_s=response_delay_s)


async def stop_serving(task: asyncio.Task[None]) -> None:
    """Cancel a serving task and wait for it."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
