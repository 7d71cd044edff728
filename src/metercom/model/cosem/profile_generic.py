"""Profile generic (class 7): capture objects and buffers as named, typed columns (Blue Book 4.3.6).

Rule: a buffer row means nothing without the ``capture_objects`` it was captured with; this
module pairs them. :func:`parse_capture_objects` reads attribute 3 into :class:`CaptureObject`
values; :func:`parse_buffer` checks attribute 2 against them (every row a structure with one
member per capture object) and returns a :class:`ProfileTable` whose columns have stable
names. Scaling uses the class tables: a column is scaled only if its (class, attribute) is a
scaled value (:attr:`AttributeSpec.scaled_by`), with the ``scaler_unit`` of its OBIS code.

Theory of operation:

* Column key: ``"<OBIS>/<attribute>"`` (``"1-0:1.8.0*255/2"``), plus ``"/<data_index>"`` when a
  capture object selects one element of an array attribute. Labels (``labels=True``) use the
  OBIS name and the attribute name instead (``"Active energy import (+A) total: value"``).
* Scalers come from the registers' own ``scaler_unit`` attributes, or, in IS 15959 meters,
  from a *scaler profile*: a second Profile generic whose single row holds the
  ``scaler_unit`` of every register column (:func:`scalers_from_profile`).
* Compressed timestamps: meters may send ``null-data`` for the clock column of rows that
  follow the previous one by exactly one capture period; :meth:`ProfileTable.timestamps`
  restores them from the capture period.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from metercom.errors import InputError
from metercom.model.cosem.classes import CAPTURE_OBJECT_DEFINITION, find_class
from metercom.model.cosem.registers import scale, scaler_unit_of
from metercom.model.cosem.types import ArrayOf
from metercom.model.dlms_data import Data, DlmsType, DlmsValueError
from metercom.model.obis import Obis
from metercom.model.units import ScalerUnit

__all__ = [
    "CaptureObject",
    "ProfileTable",
    "capture_objects_to_data",
    "parse_buffer",
    "parse_capture_objects",
    "scalers_from_profile",
]

_CAPTURE_OBJECTS = ArrayOf(CAPTURE_OBJECT_DEFINITION)


class CaptureObject(NamedTuple):
    """One ``capture_object_definition``: which attribute (and element) of which object a column holds."""

    class_id: int
    logical_name: Obis
    attribute_index: int
    data_index: int = 0

    @classmethod
    def from_data(cls, data: Data, where: str = "capture_object") -> CaptureObject:
        """Read a ``structure{class_id, logical_name, attribute_index, data_index}``."""
        CAPTURE_OBJECT_DEFINITION.check(data, where)
        class_id, name, attribute, index = data.as_items()
        return cls(class_id.as_int(), Obis.from_bytes(name.as_bytes()), attribute.as_int(), index.as_int())

    @classmethod
    def parse(
        cls, class_id: int, logical_name: str | Obis, attribute_index: int, data_index: int = 0
    ) -> CaptureObject:
        """Build from an OBIS text: ``CaptureObject.parse(3, "1.0.1.8.0.255", 2)``."""
        obis = logical_name if isinstance(logical_name, Obis) else Obis.parse(logical_name)
        return cls(class_id, obis, attribute_index, data_index)

    def to_data(self) -> Data:
        """The ``capture_object_definition`` structure."""
        return Data.structure(
            Data.long_unsigned(self.class_id),
            Data.octet_string(self.logical_name.to_bytes()),
            Data.integer(self.attribute_index),
            Data.long_unsigned(self.data_index),
        )

    @property
    def key(self) -> str:
        """Stable column key: ``"1-0:1.8.0*255/2"`` (``"/<data_index>"`` appended when non-zero)."""
        text = f"{self.logical_name}/{self.attribute_index}"
        return f"{text}/{self.data_index}" if self.data_index else text

    @property
    def label(self) -> str:
        """Human column name: OBIS name (or code) and attribute name from the class table."""
        ic = find_class(self.class_id)
        attribute = (
            ic.attribute(self.attribute_index).name
            if ic is not None and ic.has_attribute(self.attribute_index)
            else f"attribute {self.attribute_index}"
        )
        text = f"{self.logical_name.name or self.logical_name}: {attribute}"
        return f"{text}[{self.data_index}]" if self.data_index else text

    @property
    def is_clock_time(self) -> bool:
        """True for the Clock ``time`` attribute (the timestamp column)."""
        return self.class_id == 8 and self.attribute_index == 2

    @property
    def scaled_by(self) -> int | None:
        """Index of the ``scaler_unit`` attribute that scales this column, or None."""
        if self.data_index:
            return None
        ic = find_class(self.class_id)
        if ic is None or not ic.has_attribute(self.attribute_index):
            return None
        return ic.attribute(self.attribute_index).scaled_by


def parse_capture_objects(data: Data) -> list[CaptureObject]:
    """Profile generic attribute 3 as a list of :class:`CaptureObject` (checked first)."""
    where = "Profile generic attribute 3 capture_objects"
    _CAPTURE_OBJECTS.check(data, where)
    return [CaptureObject.from_data(item, f"{where}[{i}]") for i, item in enumerate(data.as_items())]


def capture_objects_to_data(objects: Iterable[CaptureObject]) -> Data:
    """The attribute 3 value for these capture objects."""
    return Data.array(o.to_data() for o in objects)


@dataclass(frozen=True, slots=True)
class ProfileTable:
    """A decoded buffer: ``rows[i][j]`` is the value of ``columns[j]`` in entry ``i``."""

    columns: tuple[CaptureObject, ...]
    rows: tuple[tuple[Data, ...], ...]

    def __len__(self) -> int:
        return len(self.rows)

    def _keys(self, labels: bool) -> list[str]:
        return [c.label if labels else c.key for c in self.columns]

    def records(self, *, labels: bool = False) -> list[dict[str, Data]]:
        """One dict per row, keyed by column key (or label)."""
        keys = self._keys(labels)
        return [dict(zip(keys, row, strict=True)) for row in self.rows]

    def column_index(self, which: CaptureObject | str | int) -> int:
        """Position of a column given as capture object, key or position."""
        if isinstance(which, int):
            if not 0 <= which < len(self.columns):
                raise InputError(f"no column {which}; the profile has {len(self.columns)}")
            return which
        for i, column in enumerate(self.columns):
            if which in (column, column.key):
                return i
        raise InputError(f"no column {which!r}; columns: {', '.join(c.key for c in self.columns)}")

    def column(self, which: CaptureObject | str | int) -> list[Data]:
        """All values of one column."""
        i = self.column_index(which)
        return [row[i] for row in self.rows]

    def timestamps(
        self,
        *,
        capture_period_s: int | None = None,
        default_tz: _dt.tzinfo | None = None,
        invert_deviation: bool = False,
    ) -> list[_dt.datetime | None]:
        """The clock column as aware datetimes; null-data rows become previous + capture period
        (``None`` where that cannot be known). Raises :class:`InputError` if there is no clock
        column or a timestamp cannot be converted."""
        clock = next((i for i, c in enumerate(self.columns) if c.is_clock_time), None)
        if clock is None:
            raise InputError("the profile has no clock column (class 8 attribute 2)")
        out: list[_dt.datetime | None] = []
        previous: _dt.datetime | None = None
        for n, row in enumerate(self.rows):
            cell = row[clock]
            if cell.type == DlmsType.NULL_DATA:
                current = (
                    previous + _dt.timedelta(seconds=capture_period_s)
                    if previous is not None and capture_period_s
                    else None
                )
            else:
                try:
                    current = cell.as_date_time().to_datetime(
                        default_tz=default_tz, invert_deviation=invert_deviation
                    )
                except DlmsValueError as exc:
                    raise InputError(str(exc), where=f"buffer row {n} clock") from exc
            out.append(current)
            previous = current
        return out

    def values(
        self, scalers: Mapping[Obis, ScalerUnit] | None = None, *, labels: bool = False
    ) -> list[dict[str, object]]:
        """Rows with interpreted cells: clock column -> :class:`CosemDateTime`; a scaled
        column with a known scaler -> :class:`Quantity`; null-data -> None; else the plain
        Python value (:meth:`Data.to_python`)."""
        keys = self._keys(labels)
        scalers = scalers or {}
        plan: list[tuple[str, ScalerUnit | None]] = []
        for column in self.columns:
            if column.is_clock_time:
                plan.append(("clock", None))
            elif column.scaled_by is not None and column.logical_name in scalers:
                plan.append(("scale", scalers[column.logical_name]))
            else:
                plan.append(("plain", None))
        out: list[dict[str, object]] = []
        for n, row in enumerate(self.rows):
            record: dict[str, object] = {}
            for key, (how, su), cell in zip(keys, plan, row, strict=True):
                if cell.type == DlmsType.NULL_DATA:
                    record[key] = None
                elif how == "clock" and _is_date_time(cell):
                    record[key] = cell.as_date_time()
                elif how == "scale" and su is not None:
                    record[key] = scale(cell, su, where=f"buffer row {n} {key}")
                else:
                    record[key] = cell.to_python()
            out.append(record)
        return out

    def to_data(self) -> Data:
        """The buffer (attribute 2) for these rows."""
        return Data.array(Data.structure(*row) for row in self.rows)


def _is_date_time(cell: Data) -> bool:
    return cell.type == DlmsType.DATE_TIME or (
        cell.type == DlmsType.OCTET_STRING and isinstance(cell.value, bytes) and len(cell.value) == 12
    )


def parse_buffer(buffer: Data, capture_objects: Sequence[CaptureObject]) -> ProfileTable:
    """Pair a buffer (attribute 2, array or compact-array of structures) with its capture objects.

    Raises :class:`InputError` naming the row when a row is not a structure or has the wrong
    number of members.
    """
    where = "Profile generic attribute 2 buffer"
    if buffer.type not in (DlmsType.ARRAY, DlmsType.COMPACT_ARRAY):
        raise InputError(f"expected an array of rows, got {buffer.type.name.lower()}", where=where)
    width = len(capture_objects)
    rows: list[tuple[Data, ...]] = []
    for n, row in enumerate(buffer.as_items()):
        if row.type != DlmsType.STRUCTURE or not isinstance(row.value, tuple):
            raise InputError(f"row {n} is a {row.type.name.lower()}, not a structure", where=where)
        if len(row.value) != width:
            raise InputError(
                f"row {n} has {len(row.value)} values but there are {width} capture objects", where=where
            )
        rows.append(row.value)
    return ProfileTable(tuple(capture_objects), tuple(rows))


def scalers_from_profile(buffer: Data, capture_objects: Sequence[CaptureObject]) -> dict[Obis, ScalerUnit]:
    """The scalers of a *scaler profile* (IS 15959 1.0.94.91.3.255 and friends).

    Its capture objects point at the ``scaler_unit`` attribute of each register; its buffer
    has (at least) one row holding those structures. Columns that are not a ``scaler_unit``
    attribute (e.g. a clock) are skipped. The first row is used.
    """
    table = parse_buffer(buffer, capture_objects)
    if not table.rows:
        raise InputError("the scaler profile buffer is empty")
    out: dict[Obis, ScalerUnit] = {}
    for column, cell in zip(table.columns, table.rows[0], strict=True):
        ic = find_class(column.class_id)
        if ic is None or not ic.has_attribute(column.attribute_index):
            continue
        if ic.attribute(column.attribute_index).name != "scaler_unit":
            continue
        out[column.logical_name] = scaler_unit_of(cell, f"scaler profile column {column.key}")
    return out
