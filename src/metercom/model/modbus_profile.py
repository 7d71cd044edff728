"""Modbus device profiles: register maps as data (TOML), validated once, shared by client and simulator.

Rule: what a Modbus device holds where (register table, address, width, word order, scale,
unit, OBIS code) is data in ``model/profiles/modbus/<name>.toml``, not code. The client turns
registers into :class:`~metercom.model.reading.Reading` objects with it and the simulator
serves registers from it, so both sides read the same map. Scaling is applied here, once
(DESIGN.md section 3); the codec never scales. A profile is validated as a whole when it is
loaded: an unknown key, an overlapping register, a bad OBIS code or a dangling reference raises
:class:`~metercom.errors.ConfigError` naming the file and the entry, before any I/O.

Theory of operation:

* A :class:`Point` is one value: ``table`` (``input`` or ``holding``), ``address``, ``type``
  (``uint16``, ``int16``, ``uint32``, ``int32``), ``word_order`` of 32-bit values (``little``
  = low word first, the PZEM convention, or ``big``), ``scale`` (a decimal string, so
  ``"0.1"`` is exact), ``unit``, ``obis`` and, for voltages, ``obis_line_to_line``. Its
  ``kind`` says how the raw integer becomes a value: ``number`` (Decimal = raw x scale),
  ``flag`` (non-zero = True), ``enum`` (``values`` table) or ``unix_time`` (a UTC datetime).
* ``[[read]]`` blocks are the requests a poll makes; every point inside one becomes a reading.
* Structured registers (relay action slots, event-log entries) are :class:`RecordLayout` s:
  a base address, a record size and fields at offsets. Combining a field's registers into an
  integer is the caller's job (the session uses pymodbus ``convert_from_registers``); this
  module maps integers to meaning and back, so it stays standard-library only.
* :meth:`ModbusProfile.readings` picks ``obis_line_to_line`` for voltages when the profile's
  voltage-mode point says line-to-line, and stamps readings with the device's own clock when the
  profile polls one.
"""

from __future__ import annotations

import enum
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Final, Literal, cast

from metercom.errors import ConfigError, InputError
from metercom.model.obis import Obis
from metercom.model.reading import Reading, ReadingValue

__all__ = [
    "DATATYPES",
    "ActionSlot",
    "ClockSpec",
    "DeviceEvent",
    "EventLogSpec",
    "Field",
    "ModbusProfile",
    "Point",
    "Probe",
    "ReadBlock",
    "RecordLayout",
    "RegisterTable",
    "RelaySpec",
    "RuleSlotSpec",
    "VoltageModeSpec",
    "load_modbus_profile",
    "profile_names",
]

Datatype = Literal["uint16", "int16", "uint32", "int32"]
WordOrder = Literal["big", "little"]
PointKind = Literal["number", "flag", "enum", "unix_time"]

#: Register count and signedness of each datatype.
DATATYPES: Final[dict[str, tuple[int, bool]]] = {
    "uint16": (1, False),
    "int16": (1, True),
    "uint32": (2, False),
    "int32": (2, True),
}
_KINDS: Final = ("number", "flag", "enum", "unix_time")
#: Most registers one read may ask for (Modbus Application Protocol, function 0x03/0x04).
MAX_READ_COUNT: Final = 125
_FLAG_TRUE: Final = 0xFFFF

_PACKAGE: Final = "metercom.model.profiles.modbus"


class RegisterTable(enum.StrEnum):
    """The two 16-bit register tables of Modbus."""

    INPUT = "input"  # function 0x04, read-only
    HOLDING = "holding"  # functions 0x03, 0x06, 0x10

    @property
    def read_function(self) -> int:
        return 0x04 if self is RegisterTable.INPUT else 0x03


def _raw_range(datatype: str) -> tuple[int, int]:
    width, signed = DATATYPES[datatype]
    bits = 16 * width
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


@dataclass(frozen=True, slots=True)
class Field:
    """One integer inside a record, ``offset`` registers from the record's start."""

    name: str
    offset: int
    datatype: Datatype = "uint16"
    word_order: WordOrder = "little"

    @property
    def width(self) -> int:
        """Registers the field occupies."""
        return DATATYPES[self.datatype][0]

    @property
    def signed(self) -> bool:
        return DATATYPES[self.datatype][1]


@dataclass(frozen=True, slots=True)
class Point:
    """One value of a device: where it is and what its raw integer means."""

    name: str
    table: RegisterTable
    address: int
    datatype: Datatype = "uint16"
    word_order: WordOrder = "little"
    kind: PointKind = "number"
    scale: Decimal = Decimal(1)
    unit: str | None = None
    obis: Obis | None = None
    obis_line_to_line: Obis | None = None
    phase: int | None = None
    values: Mapping[int, str] = field(default_factory=dict)
    writable: bool = False
    minimum: int | None = None
    maximum: int | None = None
    description: str = ""

    @property
    def width(self) -> int:
        """Registers the point occupies."""
        return DATATYPES[self.datatype][0]

    @property
    def signed(self) -> bool:
        return DATATYPES[self.datatype][1]

    @property
    def as_field(self) -> Field:
        """The point as a :class:`Field` at its absolute address."""
        return Field(self.name, self.address, self.datatype, self.word_order)

    def decode(self, raw: int) -> ReadingValue:
        """The value of raw integer ``raw`` (scaled Decimal, bool, enum name or UTC datetime)."""
        if self.kind == "flag":
            return raw != 0
        if self.kind == "enum":
            return self.values.get(raw, str(raw))
        if self.kind == "unix_time":
            return datetime.fromtimestamp(raw, UTC)
        return Decimal(raw) * self.scale

    def encode(self, value: ReadingValue | int | float) -> int:
        """The raw integer for ``value``; raises :class:`InputError` when it does not fit."""
        raw: int
        if self.kind == "flag":
            raw = _FLAG_TRUE if value else 0
        elif self.kind == "enum" and isinstance(value, str):
            names = {name: code for code, name in self.values.items()}
            if value not in names:
                raise InputError(f"{self.name}: {value!r} is not one of {', '.join(sorted(names))}")
            raw = names[value]
        elif self.kind == "unix_time" and isinstance(value, datetime):
            if value.tzinfo is None:
                raise InputError(f"{self.name}: a time must be timezone-aware, got {value.isoformat()}")
            raw = int(value.timestamp())
        elif isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
            try:
                scaled = Decimal(value) / self.scale
                raw = int(scaled.to_integral_value(ROUND_HALF_EVEN))
            except (InvalidOperation, ValueError, OverflowError) as exc:
                raise InputError(f"{self.name}: cannot encode {value!r}") from exc
        else:
            raise InputError(f"{self.name}: cannot encode {value!r} as a {self.kind} point")
        low, high = _raw_range(self.datatype)
        if self.minimum is not None:
            low = max(low, self.minimum)
        if self.maximum is not None:
            high = min(high, self.maximum)
        if not low <= raw <= high:
            raise InputError(f"{self.name}: raw value {raw} outside {low}..{high} (from {value!r})")
        return raw

    def clamp(self, value: float | Decimal | int) -> int:
        """Like :meth:`encode` for a number, but saturating at the type's range (simulators)."""
        raw = int((Decimal(value) / self.scale).to_integral_value(ROUND_HALF_EVEN))
        low, high = _raw_range(self.datatype)
        return min(max(raw, low), high)


@dataclass(frozen=True, slots=True)
class ReadBlock:
    """One read request of a poll: ``count`` registers of ``table`` from ``address``."""

    table: RegisterTable
    address: int
    count: int

    def covers(self, point: Point) -> bool:
        """True when every register of ``point`` is inside this block."""
        return (
            point.table is self.table
            and self.address <= point.address
            and point.address + point.width <= self.end
        )

    @property
    def end(self) -> int:
        return self.address + self.count


@dataclass(frozen=True, slots=True)
class Probe:
    """The request a scan uses to recognise a profile, and the registers it expects back."""

    table: RegisterTable
    address: int
    count: int
    expect: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class RecordLayout:
    """``count`` records of ``size`` holding registers from ``base``, each with ``fields``."""

    base: int
    size: int
    count: int
    fields: tuple[Field, ...]
    table: RegisterTable = RegisterTable.HOLDING

    def address(self, index: int) -> int:
        """First register of record ``index``."""
        if not 0 <= index < self.count:
            raise InputError(f"record index must be 0..{self.count - 1}, got {index}")
        return self.base + index * self.size

    def field(self, name: str) -> Field:
        for item in self.fields:
            if item.name == name:
                return item
        raise KeyError(name)

    @property
    def end(self) -> int:
        return self.base + self.size * self.count


@dataclass(frozen=True, slots=True)
class ClockSpec:
    """The device clock: a writable ``unix_time`` holding point and its polled mirror, if any."""

    point: str
    mirror: str | None = None


@dataclass(frozen=True, slots=True)
class VoltageModeSpec:
    """Line-to-neutral or line-to-line voltages: the setting, its polled mirror, the LL code."""

    setting: str
    mirror: str
    line_to_line: int


@dataclass(frozen=True, slots=True)
class RuleSlotSpec:
    """Slots for rules the device evaluates itself (``[relays.rules]``).

    Slot k is ``slots.size`` holding registers from ``slots.address(k)``: the fields ``length``
    (bytes of the slot image, 0 = empty) and ``crc`` (CRC-32 of the image), then the image from
    ``image_offset``, two bytes per register, high byte first. ``status`` holds the read-only
    per-slot state the device keeps (fields ``state``, ``result``, ``triggered_count``,
    ``changed_at``, ``crc``). The image is :func:`metercom.model.rules.slots.encode_slot`'s.
    """

    slots: RecordLayout
    image_offset: int
    status: RecordLayout

    @property
    def image_bytes(self) -> int:
        """Largest image a slot holds."""
        return 2 * (self.slots.size - self.image_offset)


@dataclass(frozen=True, slots=True)
class RelaySpec:
    """Relay outputs as a bit mask register, and optional action and rule slots."""

    count: int
    state: str
    mirror: str | None
    names: tuple[str, ...]
    load_relay: int | None
    slots: RecordLayout | None
    actions: Mapping[int, str]
    triggers: Mapping[int, str]
    rules: RuleSlotSpec | None = None


@dataclass(frozen=True, slots=True)
class EventLogSpec:
    """An event ring: a total-count point, ``capacity`` entries laid out by ``entries``."""

    count: str
    capacity: int
    entries: RecordLayout
    codes: Mapping[int, str]

    def index_of(self, seq: int) -> int:
        """Ring index of event number ``seq`` (1-based)."""
        return (seq - 1) % self.capacity


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    """One entry of a device's event log."""

    seq: int
    time: datetime
    code: int
    name: str
    detail: int

    def to_json(self) -> dict[str, object]:
        return {
            "seq": self.seq,
            "time": self.time.isoformat(),
            "code": self.code,
            "name": self.name,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class ActionSlot:
    """One relay action slot: switch ``relay`` to ``action`` when ``trigger`` fires."""

    index: int
    enabled: bool
    relay: int
    action: str
    trigger: str
    #: Unix time for ``at_time``, watts for ``power_above``/``power_below``.
    parameter: int
    fired: bool = False


@dataclass(frozen=True)
class ModbusProfile:
    """A device's register map and capabilities; load with :func:`load_modbus_profile`."""

    name: str
    title: str
    description: str
    phases: int
    functions: frozenset[int]
    baud_rate: int
    frame_format: str
    read_blocks: tuple[ReadBlock, ...]
    points: tuple[Point, ...]
    identify: Probe
    reset_energy_function: int | None = None
    address_point: str | None = None
    alarm_threshold_point: str | None = None
    clock: ClockSpec | None = None
    voltage_mode: VoltageModeSpec | None = None
    relays: RelaySpec | None = None
    event_log: EventLogSpec | None = None
    source: str = ""
    _by_name: dict[str, Point] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {p.name: p for p in self.points})

    def point(self, name: str) -> Point:
        """The point called ``name``; raises :class:`InputError` naming the known points."""
        try:
            return self._by_name[name]
        except KeyError:
            raise InputError(
                f"profile {self.name} has no point {name!r} (known: {', '.join(self._by_name)})"
            ) from None

    def has_point(self, name: str) -> bool:
        return name in self._by_name

    @property
    def polled_points(self) -> tuple[Point, ...]:
        """Points inside a ``[[read]]`` block, in profile order: what a poll returns."""
        return tuple(p for p in self.points if any(block.covers(p) for block in self.read_blocks))

    def points_in(self, block: ReadBlock) -> tuple[Point, ...]:
        return tuple(p for p in self.points if block.covers(p))

    def readings(self, raw: Mapping[str, int], *, captured_at: datetime | None = None) -> list[Reading]:
        """Readings from raw integers by point name (what a poll decoded), in profile order.

        ``captured_at`` defaults to the device's own clock when the profile polls it.
        """
        line_to_line = False
        if self.voltage_mode is not None and self.voltage_mode.mirror in raw:
            line_to_line = raw[self.voltage_mode.mirror] == self.voltage_mode.line_to_line
        mirror = self.clock.mirror if self.clock is not None else None
        if captured_at is None and mirror is not None and mirror in raw:
            captured_at = datetime.fromtimestamp(raw[mirror], UTC)
        readings = []
        for point in self.points:
            if point.name not in raw:
                continue
            value = raw[point.name]
            obis = point.obis_line_to_line if line_to_line and point.obis_line_to_line else point.obis
            readings.append(
                Reading(
                    obis=obis,
                    value=point.decode(value),
                    unit=point.unit,
                    captured_at=captured_at,
                    address=point.name,
                    raw=f"{value & ((1 << (16 * point.width)) - 1):0{4 * point.width}x}",
                )
            )
        return readings

    # -- records -------------------------------------------------------------------------------

    def decode_event(self, fields: Mapping[str, int]) -> DeviceEvent:
        """An event-log entry from its raw field integers (``seq``, ``time``, ``code``, ``detail``)."""
        log = self._require_event_log()
        code = fields["code"]
        return DeviceEvent(
            seq=fields["seq"],
            time=datetime.fromtimestamp(fields["time"], UTC),
            code=code,
            name=log.codes.get(code, f"code_{code}"),
            detail=fields["detail"],
        )

    def encode_event(self, event: DeviceEvent) -> dict[str, int]:
        return {
            "seq": event.seq,
            "time": int(event.time.timestamp()),
            "code": event.code,
            "detail": event.detail,
        }

    def decode_slot(self, index: int, fields: Mapping[str, int]) -> ActionSlot:
        """A relay action slot from its raw field integers."""
        relays = self._require_relays()
        return ActionSlot(
            index=index,
            enabled=fields["enabled"] != 0,
            relay=fields["relay"],
            action=relays.actions.get(fields["action"], str(fields["action"])),
            trigger=relays.triggers.get(fields["trigger"], str(fields["trigger"])),
            parameter=fields["parameter"],
            fired=fields["state"] != 0,
        )

    def encode_slot(self, slot: ActionSlot) -> dict[str, int]:
        """Raw field integers of ``slot``; raises :class:`InputError` for an invalid slot."""
        relays = self._require_relays()
        actions = {name: code for code, name in relays.actions.items()}
        triggers = {name: code for code, name in relays.triggers.items()}
        if slot.action not in actions:
            raise InputError(f"action must be one of {', '.join(actions)}, got {slot.action!r}")
        if slot.trigger not in triggers:
            raise InputError(f"trigger must be one of {', '.join(triggers)}, got {slot.trigger!r}")
        if not 1 <= slot.relay <= relays.count:
            raise InputError(f"relay must be 1..{relays.count}, got {slot.relay}")
        if not 0 <= slot.parameter <= 0xFFFFFFFF:
            raise InputError(f"parameter must be 0..4294967295, got {slot.parameter}")
        return {
            "enabled": int(slot.enabled),
            "relay": slot.relay,
            "action": actions[slot.action],
            "trigger": triggers[slot.trigger],
            "parameter": slot.parameter,
            "state": int(slot.fired),
        }

    def _require_event_log(self) -> EventLogSpec:
        if self.event_log is None:
            raise InputError(f"profile {self.name} has no event log")
        return self.event_log

    def _require_relays(self) -> RelaySpec:
        if self.relays is None or self.relays.slots is None:
            raise InputError(f"profile {self.name} has no relay action slots")
        return self.relays


# ---- loading -------------------------------------------------------------------------------------


class _Reader:
    """Typed access to one TOML table, with errors naming the file and entry."""

    def __init__(self, data: Mapping[str, Any], where: str) -> None:
        self.data = data
        self.where = where
        self.used: set[str] = set()

    def fail(self, message: str) -> ConfigError:
        return ConfigError(message, where=self.where)

    def _get(self, key: str, kinds: type | tuple[type, ...], default: Any, required: bool) -> Any:
        self.used.add(key)
        if key not in self.data:
            if required:
                raise self.fail(f"missing key {key!r}")
            return default
        value = self.data[key]
        if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
            raise self.fail(f"{key!r} must be {_kind_names(kinds)}, got {value!r}")
        if not isinstance(value, kinds):
            raise self.fail(f"{key!r} must be {_kind_names(kinds)}, got {value!r}")
        return value

    def text(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        return cast("str | None", self._get(key, str, default, required))

    def req_text(self, key: str) -> str:
        return cast(str, self._get(key, str, None, True))

    def integer(self, key: str, default: int | None = None, *, required: bool = False) -> int | None:
        return cast("int | None", self._get(key, int, default, required))

    def req_int(self, key: str, low: int = 0, high: int = 0xFFFF) -> int:
        value = cast(int, self._get(key, int, None, True))
        if not low <= value <= high:
            raise self.fail(f"{key!r} must be {low}..{high}, got {value}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        return cast(bool, self._get(key, bool, default, False))

    def table(self, key: str, *, required: bool = False) -> Mapping[str, Any] | None:
        return cast("Mapping[str, Any] | None", self._get(key, dict, None, required))

    def array(self, key: str, *, required: bool = False) -> list[Any]:
        return cast("list[Any]", self._get(key, list, [], required))

    def codes(self, key: str) -> dict[int, str]:
        table = self.table(key, required=True) or {}
        out: dict[int, str] = {}
        for code, name in table.items():
            if not code.isdigit() or not isinstance(name, str):
                raise self.fail(f"{key!r} maps integer codes to names, got {code!r} = {name!r}")
            out[int(code)] = name
        return out

    def check_unknown(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise self.fail(f"unknown key(s) {', '.join(map(repr, unknown))}")


def _kind_names(kinds: type | tuple[type, ...]) -> str:
    names = {int: "an integer", str: "a string", bool: "true or false", dict: "a table", list: "an array"}
    items = kinds if isinstance(kinds, tuple) else (kinds,)
    return " or ".join(names.get(k, k.__name__) for k in items)


def _table_of(reader: _Reader, key: str = "table") -> RegisterTable:
    text = reader.req_text(key)
    try:
        return RegisterTable(text)
    except ValueError:
        raise reader.fail(f"{key!r} must be 'input' or 'holding', got {text!r}") from None


def _datatype(reader: _Reader, default_order: WordOrder) -> tuple[Datatype, WordOrder]:
    datatype = reader.text("type", "uint16")
    if datatype not in DATATYPES:
        raise reader.fail(f"'type' must be one of {', '.join(DATATYPES)}, got {datatype!r}")
    order = reader.text("word_order", default_order)
    if order not in ("big", "little"):
        raise reader.fail(f"'word_order' must be 'little' (low word first) or 'big', got {order!r}")
    return cast(Datatype, datatype), cast(WordOrder, order)


def _obis(reader: _Reader, key: str) -> Obis | None:
    text = reader.text(key)
    if text is None:
        return None
    try:
        return Obis.parse(text)
    except InputError as exc:
        raise reader.fail(f"{key!r}: {exc}") from exc


def _scale(reader: _Reader) -> Decimal:
    reader.used.add("scale")
    value = reader.data.get("scale", "1")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise reader.fail(f"'scale' must be a decimal string such as \"0.1\" (not a float), got {value!r}")
    try:
        scale = Decimal(value)
    except InvalidOperation:
        raise reader.fail(f"'scale' is not a decimal number: {value!r}") from None
    if not scale.is_finite() or scale <= 0:
        raise reader.fail(f"'scale' must be positive, got {value!r}")
    return scale


def _point(data: Mapping[str, Any], where: str, default_order: WordOrder) -> Point:
    reader = _Reader(data, where)
    name = reader.req_text("name")
    reader.where = f"{where} {name!r}"
    table = _table_of(reader)
    address = reader.req_int("address")
    datatype, order = _datatype(reader, default_order)
    kind = reader.text("kind", "number")
    if kind not in _KINDS:
        raise reader.fail(f"'kind' must be one of {', '.join(_KINDS)}, got {kind!r}")
    values = reader.codes("values") if kind == "enum" else {}
    phase = reader.integer("phase")
    point = Point(
        name=name,
        table=table,
        address=address,
        datatype=datatype,
        word_order=order,
        kind=cast(PointKind, kind),
        scale=_scale(reader),
        unit=reader.text("unit"),
        obis=_obis(reader, "obis"),
        obis_line_to_line=_obis(reader, "obis_line_to_line"),
        phase=phase,
        values=values,
        writable=reader.flag("writable", False),
        minimum=reader.integer("minimum"),
        maximum=reader.integer("maximum"),
        description=reader.text("description", "") or "",
    )
    reader.check_unknown()
    if address + point.width > 0x10000:
        raise reader.fail(f"address 0x{address:04X} + {point.width} registers runs past 0xFFFF")
    if point.writable and point.table is RegisterTable.INPUT:
        raise reader.fail("input registers are read-only; 'writable' needs table = 'holding'")
    return point


def _record(
    data: Mapping[str, Any], where: str, default_order: WordOrder, count: int | None
) -> tuple[RecordLayout, _Reader]:
    reader = _Reader(data, where)
    base = reader.req_int("base")
    size = reader.req_int("size", 1, MAX_READ_COUNT)
    if count is None:
        count = reader.req_int("count", 1, 1000)
    fields = []
    for i, item in enumerate(reader.array("fields", required=True)):
        if not isinstance(item, dict):
            raise reader.fail(f"fields[{i}] must be a table")
        sub = _Reader(item, f"{where} fields[{i}]")
        name = sub.req_text("name")
        offset = sub.req_int("offset", 0, size - 1)
        datatype, order = _datatype(sub, default_order)
        sub.check_unknown()
        item_field = Field(name, offset, datatype, order)
        if offset + item_field.width > size:
            raise sub.fail(f"field {name!r} runs past the record size {size}")
        fields.append(item_field)
    layout = RecordLayout(base, size, count, tuple(fields))
    _check_overlaps([(f.name, f.offset, f.width) for f in fields], where)
    if layout.end > 0x10000:
        raise reader.fail("records run past register 0xFFFF")
    return layout, reader


def _check_overlaps(items: Iterable[tuple[str, int, int]], where: str) -> None:
    taken: dict[int, str] = {}
    for name, address, width in items:
        for reg in range(address, address + width):
            if reg in taken:
                raise ConfigError(f"{name!r} overlaps {taken[reg]!r} at register 0x{reg:04X}", where=where)
            taken[reg] = name


def _parse(data: Mapping[str, Any], where: str) -> ModbusProfile:
    top = _Reader(data, where)
    name = top.req_text("name")
    order_text = top.text("word_order", "little")
    if order_text not in ("big", "little"):
        raise top.fail(f"'word_order' must be 'little' or 'big', got {order_text!r}")
    order = cast(WordOrder, order_text)
    functions = top.array("functions", required=True)
    if not functions or not all(isinstance(f, int) and 1 <= f <= 127 for f in functions):
        raise top.fail("'functions' must list function codes 1..127")
    serial = _Reader(top.table("serial") or {}, f"{where} [serial]")
    baud_rate = serial.integer("baud_rate", 9600) or 9600
    frame_format = serial.text("format", "8N1") or "8N1"
    serial.check_unknown()

    points = tuple(
        _point(item, f"{where} [[point]] #{i + 1}", order) for i, item in enumerate(top.array("point"))
    )
    names = [p.name for p in points]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise top.fail(f"duplicate point name(s) {', '.join(duplicates)}")
    for table in RegisterTable:
        _check_overlaps(
            [(p.name, p.address, p.width) for p in points if p.table is table], f"{where} ({table} registers)"
        )
    by_name = {p.name: p for p in points}

    blocks = []
    for i, item in enumerate(top.array("read", required=True)):
        reader = _Reader(item, f"{where} [[read]] #{i + 1}")
        blocks.append(
            ReadBlock(
                _table_of(reader), reader.req_int("address"), reader.req_int("count", 1, MAX_READ_COUNT)
            )
        )
        reader.check_unknown()
    if not blocks:
        raise top.fail("at least one [[read]] block is needed")

    ident = _Reader(top.table("identify", required=True) or {}, f"{where} [identify]")
    expect_list = ident.array("expect")
    identify = Probe(
        _table_of(ident),
        ident.req_int("address"),
        ident.req_int("count", 1, MAX_READ_COUNT),
        tuple(int(v) for v in expect_list) if expect_list else None,
    )
    ident.check_unknown()

    def ref(reader: _Reader, key: str, *, kind: str | None = None, table: RegisterTable | None = None) -> str:
        point_name = reader.req_text(key)
        point = by_name.get(point_name)
        if point is None:
            raise reader.fail(f"{key!r} names point {point_name!r}, which is not defined")
        if kind is not None and point.kind != kind:
            raise reader.fail(f"{key!r}: point {point_name!r} must have kind {kind!r}")
        if table is not None and point.table is not table:
            raise reader.fail(f"{key!r}: point {point_name!r} must be a {table} register")
        return point_name

    def opt_ref(key: str) -> str | None:
        if key not in data:
            top.used.add(key)
            return None
        return ref(top, key, table=RegisterTable.HOLDING)

    clock = None
    if (clock_data := top.table("clock")) is not None:
        reader = _Reader(clock_data, f"{where} [clock]")
        clock = ClockSpec(
            ref(reader, "point", kind="unix_time", table=RegisterTable.HOLDING),
            ref(reader, "mirror", kind="unix_time") if "mirror" in clock_data else None,
        )
        reader.check_unknown()

    voltage_mode = None
    if (mode_data := top.table("voltage_mode")) is not None:
        reader = _Reader(mode_data, f"{where} [voltage_mode]")
        voltage_mode = VoltageModeSpec(
            ref(reader, "setting", table=RegisterTable.HOLDING),
            ref(reader, "mirror"),
            reader.req_int("line_to_line"),
        )
        reader.check_unknown()

    relays = None
    if (relay_data := top.table("relays")) is not None:
        reader = _Reader(relay_data, f"{where} [relays]")
        count = reader.req_int("count", 1, 16)
        slots = None
        actions: dict[int, str] = {}
        triggers: dict[int, str] = {}
        if (slot_data := reader.table("slots")) is not None:
            slot_where = f"{where} [relays.slots]"
            slots, slot_reader = _record(slot_data, slot_where, order, None)
            actions = slot_reader.codes("actions")
            triggers = slot_reader.codes("triggers")
            slot_reader.check_unknown()
            missing = {"enabled", "relay", "action", "trigger", "parameter", "state"} - {
                f.name for f in slots.fields
            }
            if missing:
                raise slot_reader.fail(f"slot fields missing: {', '.join(sorted(missing))}")
        rule_slots = None
        if (rules_data := reader.table("rules")) is not None:
            rules_where = f"{where} [relays.rules]"
            rule_layout, rules_reader = _record(rules_data, rules_where, order, None)
            image_offset = rules_reader.req_int("image_offset", 1, rule_layout.size - 1)
            status_data = rules_reader.table("status", required=True) or {}
            status_layout, status_reader = _record(
                status_data, f"{rules_where} [status]", order, rule_layout.count
            )
            status_reader.check_unknown()
            rules_reader.check_unknown()
            if any(f.offset + f.width > image_offset for f in rule_layout.fields):
                raise rules_reader.fail("slot fields must lie before 'image_offset'")
            for layout, wanted, label in (
                (rule_layout, {"length", "crc"}, "slot"),
                (status_layout, {"state", "result", "triggered_count", "changed_at", "crc"}, "status"),
            ):
                missing = wanted - {f.name for f in layout.fields}
                if missing:
                    raise rules_reader.fail(f"{label} fields missing: {', '.join(sorted(missing))}")
            if status_layout.base < rule_layout.end and rule_layout.base < status_layout.end:
                raise rules_reader.fail("rule slots and their status records overlap")
            rule_slots = RuleSlotSpec(rule_layout, image_offset, status_layout)
        names_list = reader.array("names")
        load_relay = reader.integer("load_relay")
        relays = RelaySpec(
            count=count,
            state=ref(reader, "state", table=RegisterTable.HOLDING),
            mirror=ref(reader, "mirror") if "mirror" in relay_data else None,
            names=tuple(str(n) for n in names_list) or tuple(f"relay {i + 1}" for i in range(count)),
            load_relay=load_relay,
            slots=slots,
            actions=actions,
            triggers=triggers,
            rules=rule_slots,
        )
        reader.check_unknown()
        if len(relays.names) != count:
            raise reader.fail(f"'names' has {len(relays.names)} entries for {count} relays")
        if load_relay is not None and not 1 <= load_relay <= count:
            raise reader.fail(f"'load_relay' must be 1..{count}, got {load_relay}")

    event_log = None
    if (log_data := top.table("event_log")) is not None:
        log_where = f"{where} [event_log]"
        capacity = _Reader(log_data, log_where).req_int("capacity", 1, 1000)
        entries, log_reader = _record(log_data, log_where, order, capacity)
        log_reader.used.add("capacity")
        event_log = EventLogSpec(
            count=ref(log_reader, "count", table=RegisterTable.HOLDING),
            capacity=capacity,
            entries=entries,
            codes=log_reader.codes("codes"),
        )
        log_reader.check_unknown()
        missing = {"seq", "time", "code", "detail"} - {f.name for f in entries.fields}
        if missing:
            raise log_reader.fail(f"entry fields missing: {', '.join(sorted(missing))}")

    reset_fn = top.integer("reset_energy_function")
    profile = ModbusProfile(
        name=name,
        title=top.text("title", name) or name,
        description=top.text("description", "") or "",
        phases=top.req_int("phases", 1, 3),
        functions=frozenset(functions),
        baud_rate=baud_rate,
        frame_format=frame_format,
        read_blocks=tuple(blocks),
        points=points,
        identify=identify,
        reset_energy_function=reset_fn,
        address_point=opt_ref("address_point"),
        alarm_threshold_point=opt_ref("alarm_threshold_point"),
        clock=clock,
        voltage_mode=voltage_mode,
        relays=relays,
        event_log=event_log,
        source=where,
    )
    top.check_unknown()
    if reset_fn is not None and reset_fn not in profile.functions:
        raise top.fail(f"reset_energy_function 0x{reset_fn:02X} is not in 'functions'")
    rule_spec = relays.rules if relays else None
    records = (
        (relays.slots if relays else None, "relay slots"),
        (event_log.entries if event_log else None, "event log"),
        (rule_spec.slots if rule_spec else None, "rule slots"),
        (rule_spec.status if rule_spec else None, "rule status"),
    )
    for record, label in records:
        if record is None:
            continue
        for point in points:
            if point.table is record.table and record.base <= point.address < record.end:
                raise ConfigError(f"point {point.name!r} lies inside the {label} records", where=where)
    return profile


def profile_from_toml(text: str, *, where: str = "<profile>") -> ModbusProfile:
    """Parse and validate a profile from TOML text."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", where=where) from exc
    return _parse(data, where)


def profile_names() -> list[str]:
    """Names of the profiles shipped with metercom."""
    root = resources.files(_PACKAGE)
    return sorted(p.name.removesuffix(".toml") for p in root.iterdir() if p.name.endswith(".toml"))


@cache
def _load_builtin(name: str) -> ModbusProfile:
    resource = resources.files(_PACKAGE) / f"{name}.toml"
    return profile_from_toml(resource.read_text(encoding="utf-8"), where=f"{name}.toml")


def load_modbus_profile(name_or_path: str | Path) -> ModbusProfile:
    """A shipped profile by name (``"pzem004t"``, ``"pmtr3"``) or a profile file by path."""
    text = str(name_or_path)
    if text.endswith(".toml") or isinstance(name_or_path, Path):
        path = Path(name_or_path)
        try:
            content = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read profile: {exc.strerror or exc}", where=str(path)) from exc
        return profile_from_toml(content, where=path.name)
    if text not in profile_names():
        raise InputError(f"unknown Modbus device profile {text!r} (known: {', '.join(profile_names())})")
    return _load_builtin(text)
