"""Scaled register values: ``value`` x 10^``scaler`` in ``unit``, exactly (Blue Book 4.3.2-4.3.4).

Rule: scaling is applied here and nowhere else (DESIGN.md section 3). The codec hands over the
raw ``Data`` a meter sent; :func:`scale` turns it into a :class:`Quantity` (an exact ``Decimal``
and the unit) with :class:`~metercom.model.units.ScalerUnit`; :func:`raw_value` goes the other
way for the simulator and for SET requests (a physical value -> the raw integer of the
register's type, rounded half-even when it does not come out whole).

Theory of operation: which attribute is scaled by which ``scaler_unit`` is data in the class
tables (:attr:`AttributeSpec.scaled_by`): Register and Extended register value (2) by 3,
Demand register current and last average (2, 3) by 4. :func:`scaler_attribute` reads it, so
a profile column or a pushed value is scaled only when the table says it is a scaled value.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import NamedTuple

from metercom.errors import InputError
from metercom.model.cosem.classes import lookup
from metercom.model.dlms_data import Data, DlmsType, DlmsValueError
from metercom.model.units import ScalerUnit, Unit, UnitError, unit_symbol

__all__ = ["Quantity", "raw_value", "register_quantity", "scale", "scaler_attribute", "scaler_unit_of"]

_INTEGER_TYPES = frozenset(
    {
        DlmsType.DOUBLE_LONG,
        DlmsType.DOUBLE_LONG_UNSIGNED,
        DlmsType.INTEGER,
        DlmsType.LONG,
        DlmsType.UNSIGNED,
        DlmsType.LONG_UNSIGNED,
        DlmsType.LONG64,
        DlmsType.LONG64_UNSIGNED,
    }
)
_FLOAT_TYPES = frozenset({DlmsType.FLOAT32, DlmsType.FLOAT64})


class Quantity(NamedTuple):
    """A physical value: exact ``Decimal`` and unit (``Quantity(Decimal("123.45"), Unit.WATT_HOUR)``)."""

    value: Decimal
    unit: Unit | int

    @property
    def symbol(self) -> str:
        """The unit symbol (``"Wh"``; ``"count"`` for unit 255)."""
        return unit_symbol(self.unit)

    def __str__(self) -> str:
        text = f"{self.value:f}"
        return text if self.unit == Unit.COUNT else f"{text} {self.symbol}"


def scaler_unit_of(scaler_unit: Data | ScalerUnit, where: str = "scaler_unit") -> ScalerUnit:
    """A :class:`ScalerUnit` from the ``scal_unit_type`` structure (or passed through)."""
    if isinstance(scaler_unit, ScalerUnit):
        return scaler_unit
    try:
        return ScalerUnit.from_data(scaler_unit)
    except UnitError as exc:
        raise InputError(str(exc), where=where) from exc


def scale(value: Data, scaler_unit: Data | ScalerUnit, *, where: str = "value") -> Quantity:
    """``value`` x 10^scaler with its unit, exactly.

    ``value`` must be an integer or float type (what registers carry); anything else
    (null-data, strings) raises :class:`InputError`: test for null-data first where a meter
    may send it (profile rows, not-yet-available demand values).
    """
    su = scaler_unit_of(scaler_unit)
    raw = value.value
    if value.type in _INTEGER_TYPES and isinstance(raw, int) and not isinstance(raw, bool):
        return Quantity(su.scale(raw), su.unit)
    if value.type in _FLOAT_TYPES and isinstance(raw, float):
        return Quantity(su.scale(raw), su.unit)
    raise InputError(
        f"cannot scale a {value.type.name.lower().replace('_', '-')} value: {value!r}", where=where
    )


def raw_value(
    quantity: Decimal | int | float,
    scaler_unit: Data | ScalerUnit,
    type_: DlmsType,
    *,
    rounding: str = ROUND_HALF_EVEN,
) -> Data:
    """The raw register ``Data`` of type ``type_`` for a physical ``quantity``.

    ``quantity`` / 10^scaler, rounded to a whole number for integer types (half-even unless
    ``rounding`` says otherwise); raises :class:`InputError` if it does not fit the type.
    """
    su = scaler_unit_of(scaler_unit)
    try:
        number = Decimal(repr(quantity)) if isinstance(quantity, float) else Decimal(quantity)
        raw = number.scaleb(-su.scaler)
    except (InvalidOperation, ValueError) as exc:
        raise InputError(f"not a number: {quantity!r}") from exc
    if not raw.is_finite():
        raise InputError(f"cannot store {quantity!r} in a register")
    try:
        if type_ in _FLOAT_TYPES:
            return Data.float32(float(raw)) if type_ == DlmsType.FLOAT32 else Data.float64(float(raw))
        if type_ in _INTEGER_TYPES:
            whole = int(raw.to_integral_value(rounding=rounding))
            low, high = _RANGES[type_]
            if not low <= whole <= high:
                raise InputError(
                    f"{quantity} at scaler {su.scaler} is raw {whole}, outside "
                    f"{type_.name.lower().replace('_', '-')} ({low}..{high}); "
                    "choose a larger type or a larger scaler"
                )
            return Data(type_, whole)
    except DlmsValueError as exc:
        raise InputError(str(exc)) from exc
    raise InputError(f"a register value cannot be a {type_.name.lower().replace('_', '-')}")


_RANGES = {
    DlmsType.DOUBLE_LONG: (-(2**31), 2**31 - 1),
    DlmsType.DOUBLE_LONG_UNSIGNED: (0, 2**32 - 1),
    DlmsType.INTEGER: (-128, 127),
    DlmsType.LONG: (-(2**15), 2**15 - 1),
    DlmsType.UNSIGNED: (0, 255),
    DlmsType.LONG_UNSIGNED: (0, 2**16 - 1),
    DlmsType.LONG64: (-(2**63), 2**63 - 1),
    DlmsType.LONG64_UNSIGNED: (0, 2**64 - 1),
}


def scaler_attribute(class_id: int, attribute: int | str, *, version: int | None = None) -> int | None:
    """Index of the ``scaler_unit`` attribute that scales this attribute, or None (not scaled)."""
    return lookup(class_id, version).attribute(attribute).scaled_by


def register_quantity(
    class_id: int, values: Mapping[int, Data], attribute: int | str = 2, *, version: int | None = None
) -> Quantity:
    """The scaled value of a register-like object from its attribute values (index -> Data).

    ``register_quantity(3, {2: Data.double_long_unsigned(12345), 3: su})`` -> 123.45 Wh for
    ``su`` = (-2, Wh). Raises :class:`InputError` if the attribute is not a scaled value or
    a needed attribute is missing.
    """
    ic = lookup(class_id, version)
    spec = ic.attribute(attribute)
    if spec.scaled_by is None:
        raise InputError(f"{ic} attribute {spec.index} {spec.name} has no scaler_unit")
    where = f"{ic.name} attribute {spec.index} {spec.name}"
    if spec.index not in values or spec.scaled_by not in values:
        raise InputError(f"need attributes {spec.index} and {spec.scaled_by}", where=where)
    return scale(
        values[spec.index], scaler_unit_of(values[spec.scaled_by], f"{ic.name} scaler_unit"), where=where
    )
