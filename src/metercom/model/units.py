"""Physical units and scalers of COSEM registers (Blue Book DLMS UA 1000-1 / IEC 62056-6-2 clause
4.3.2, Register class: ``scaler_unit`` = ``scal_unit_type`` and the table "Enumerated values for
physical units").

Rule: scaling happens here, once, and exactly. A register's ``scaler_unit`` attribute is
``structure{integer scaler, enum unit}``; the value it applies to is the raw integer the meter
sent. :meth:`ScalerUnit.scale` returns ``raw * 10**scaler`` as a ``Decimal`` built from the digits
(no float, no context rounding), so 123456 with scaler -3 is exactly ``Decimal("123.456")``.

Theory of operation: :class:`Unit` is the standard enumeration (1..72 as in IEC 62056-6-2, the
imperial units 128..174 added in later Blue Book editions, 254 "other", 255 "count"). Meters
send codes outside the table too (0, reserved values); :class:`ScalerUnit` keeps such a code as a
plain ``int`` so nothing is lost, and :func:`unit_symbol` renders it as ``unit(<code>)``.
"""

from __future__ import annotations

import enum
from decimal import Context, Decimal
from typing import TYPE_CHECKING, NamedTuple

from metercom.errors import MetercomError

if TYPE_CHECKING:
    from metercom.model.dlms_data import Data

__all__ = ["ScalerUnit", "Unit", "UnitError", "unit_symbol"]


class UnitError(MetercomError, ValueError):
    """A scaler/unit value is malformed or a value cannot be scaled as asked."""


class Unit(enum.IntEnum):
    """DLMS unit codes; ``Unit.WATT.symbol == "W"``, ``Unit.WATT.quantity == "active power"``."""

    YEAR = 1
    MONTH = 2
    WEEK = 3
    DAY = 4
    HOUR = 5
    MINUTE = 6
    SECOND = 7
    DEGREE = 8
    DEGREE_CELSIUS = 9
    CURRENCY = 10
    METRE = 11
    METRE_PER_SECOND = 12
    CUBIC_METRE = 13
    CUBIC_METRE_CORRECTED = 14
    CUBIC_METRE_PER_HOUR = 15
    CUBIC_METRE_PER_HOUR_CORRECTED = 16
    CUBIC_METRE_PER_DAY = 17
    CUBIC_METRE_PER_DAY_CORRECTED = 18
    LITRE = 19
    KILOGRAM = 20
    NEWTON = 21
    NEWTON_METRE = 22
    PASCAL = 23
    BAR = 24
    JOULE = 25
    JOULE_PER_HOUR = 26
    WATT = 27
    VOLT_AMPERE = 28
    VAR = 29
    WATT_HOUR = 30
    VOLT_AMPERE_HOUR = 31
    VAR_HOUR = 32
    AMPERE = 33
    COULOMB = 34
    VOLT = 35
    VOLT_PER_METRE = 36
    FARAD = 37
    OHM = 38
    OHM_SQUARE_METRE_PER_METRE = 39
    WEBER = 40
    TESLA = 41
    AMPERE_PER_METRE = 42
    HENRY = 43
    HERTZ = 44
    PER_WATT_HOUR = 45
    PER_VAR_HOUR = 46
    PER_VOLT_AMPERE_HOUR = 47
    VOLT_SQUARED_HOUR = 48
    AMPERE_SQUARED_HOUR = 49
    KILOGRAM_PER_SECOND = 50
    SIEMENS = 51
    KELVIN = 52
    PER_VOLT_SQUARED_HOUR = 53
    PER_AMPERE_SQUARED_HOUR = 54
    PER_CUBIC_METRE = 55
    PERCENT = 56
    AMPERE_HOUR = 57
    WATT_HOUR_PER_CUBIC_METRE = 60
    JOULE_PER_CUBIC_METRE = 61
    MOLE_PERCENT = 62
    GRAM_PER_CUBIC_METRE = 63
    PASCAL_SECOND = 64
    JOULE_PER_KILOGRAM = 65
    GRAM_PER_SQUARE_CENTIMETRE = 66
    ATMOSPHERE = 67
    DECIBEL_MILLIWATT = 70
    DECIBEL_MICROVOLT = 71
    DECIBEL = 72
    INCH = 128
    FOOT = 129
    POUND = 130
    DEGREE_FAHRENHEIT = 131
    DEGREE_RANKINE = 132
    SQUARE_INCH = 133
    SQUARE_FOOT = 134
    ACRE = 135
    CUBIC_INCH = 136
    CUBIC_FOOT = 137
    ACRE_FOOT = 138
    GALLON_IMPERIAL = 139
    GALLON_US = 140
    POUND_FORCE = 141
    POUND_FORCE_PER_SQUARE_INCH = 142
    POUND_PER_CUBIC_FOOT = 143
    POUND_PER_FOOT_SECOND = 144
    SQUARE_FOOT_PER_SECOND = 145
    BRITISH_THERMAL_UNIT = 146
    THERM_EU = 147
    THERM_US = 148
    BTU_PER_POUND = 149
    BTU_PER_CUBIC_FOOT = 150
    CUBIC_FEET = 151
    FOOT_PER_SECOND = 152
    CUBIC_FOOT_PER_SECOND = 153
    CUBIC_FOOT_PER_MINUTE = 154
    CUBIC_FOOT_PER_HOUR = 155
    CUBIC_FOOT_PER_DAY = 156
    ACRE_FOOT_PER_SECOND = 157
    ACRE_FOOT_PER_MINUTE = 158
    ACRE_FOOT_PER_HOUR = 159
    ACRE_FOOT_PER_DAY = 160
    IMPERIAL_GALLON = 161
    IMPERIAL_GALLON_PER_SECOND = 162
    IMPERIAL_GALLON_PER_MINUTE = 163
    IMPERIAL_GALLON_PER_HOUR = 164
    IMPERIAL_GALLON_PER_DAY = 165
    US_GALLON = 166
    US_GALLON_PER_SECOND = 167
    US_GALLON_PER_MINUTE = 168
    US_GALLON_PER_HOUR = 169
    US_GALLON_PER_DAY = 170
    BTU_PER_SECOND = 171
    BTU_PER_MINUTE = 172
    BTU_PER_HOUR = 173
    BTU_PER_DAY = 174
    OTHER = 254
    COUNT = 255

    @property
    def symbol(self) -> str:
        """The unit's symbol as printed by the Blue Book ("Wh", "var", "m³", "count")."""
        return _INFO[self][0]

    @property
    def quantity(self) -> str:
        """What the unit measures ("active energy")."""
        return _INFO[self][1]

    @classmethod
    def lookup(cls, code: int) -> Unit | int:
        """The member for ``code``, or ``code`` itself when it is not in the table."""
        return _BY_CODE.get(code, code)


# code -> (symbol, quantity), IEC 62056-6-2 "Enumerated values for physical units".
_INFO: dict[int, tuple[str, str]] = {
    1: ("a", "time (year)"),
    2: ("mo", "time (month)"),
    3: ("wk", "time (week)"),
    4: ("d", "time (day)"),
    5: ("h", "time (hour)"),
    6: ("min", "time (minute)"),
    7: ("s", "time (second)"),
    8: ("°", "(phase) angle"),
    9: ("°C", "temperature"),
    10: ("currency", "(local) currency"),
    11: ("m", "length"),
    12: ("m/s", "speed"),
    13: ("m³", "volume"),
    14: ("m³", "corrected volume"),
    15: ("m³/h", "volume flux"),
    16: ("m³/h", "corrected volume flux"),
    17: ("m³/d", "volume flux"),
    18: ("m³/d", "corrected volume flux"),
    19: ("l", "volume"),
    20: ("kg", "mass"),
    21: ("N", "force"),
    22: ("Nm", "energy"),
    23: ("Pa", "pressure"),
    24: ("bar", "pressure"),
    25: ("J", "energy"),
    26: ("J/h", "thermal power"),
    27: ("W", "active power"),
    28: ("VA", "apparent power"),
    29: ("var", "reactive power"),
    30: ("Wh", "active energy"),
    31: ("VAh", "apparent energy"),
    32: ("varh", "reactive energy"),
    33: ("A", "current"),
    34: ("C", "electrical charge"),
    35: ("V", "voltage"),
    36: ("V/m", "electric field strength"),
    37: ("F", "capacitance"),
    38: ("Ω", "resistance"),
    39: ("Ωm²/m", "resistivity"),
    40: ("Wb", "magnetic flux"),
    41: ("T", "magnetic flux density"),
    42: ("A/m", "magnetic field strength"),
    43: ("H", "inductance"),
    44: ("Hz", "frequency"),
    45: ("1/(Wh)", "active energy meter constant"),
    46: ("1/(varh)", "reactive energy meter constant"),
    47: ("1/(VAh)", "apparent energy meter constant"),
    48: ("V²h", "volt-squared hours"),
    49: ("A²h", "ampere-squared hours"),
    50: ("kg/s", "mass flux"),
    51: ("S", "conductance"),
    52: ("K", "temperature"),
    53: ("1/(V²h)", "volt-squared hour meter constant"),
    54: ("1/(A²h)", "ampere-squared hour meter constant"),
    55: ("1/m³", "volume meter constant"),
    56: ("%", "percentage"),
    57: ("Ah", "ampere-hours"),
    60: ("Wh/m³", "energy per volume"),
    61: ("J/m³", "calorific value, Wobbe index"),
    62: ("Mol %", "molar fraction of gas composition"),
    63: ("g/m³", "mass density"),
    64: ("Pa s", "dynamic viscosity"),
    65: ("J/kg", "specific energy"),
    66: ("g/cm²", "pressure"),
    67: ("atm", "pressure"),
    70: ("dBm", "signal strength"),
    71: ("dBµV", "signal strength"),
    72: ("dB", "logarithmic ratio"),
    128: ("in", "length"),
    129: ("ft", "length"),
    130: ("lb", "mass"),
    131: ("°F", "temperature"),
    132: ("°R", "temperature"),
    133: ("sq in", "area"),
    134: ("sq ft", "area"),
    135: ("ac", "area"),
    136: ("cu in", "volume"),
    137: ("cu ft", "volume"),
    138: ("ac-ft", "volume"),
    139: ("gal (imp)", "volume"),
    140: ("gal (US)", "volume"),
    141: ("lbf", "force"),
    142: ("psi", "pressure"),
    143: ("lb/cu ft", "density"),
    144: ("lb/(ft s)", "dynamic viscosity"),
    145: ("sq ft/s", "kinematic viscosity"),
    146: ("Btu", "energy"),
    147: ("thm (EU)", "energy"),
    148: ("thm (US)", "energy"),
    149: ("Btu/lb", "specific energy"),
    150: ("Btu/cu ft", "calorific value"),
    151: ("cu ft", "volume"),
    152: ("ft/s", "speed"),
    153: ("cu ft/s", "volume flux"),
    154: ("cu ft/min", "volume flux"),
    155: ("cu ft/h", "volume flux"),
    156: ("cu ft/d", "volume flux"),
    157: ("ac-ft/s", "volume flux"),
    158: ("ac-ft/min", "volume flux"),
    159: ("ac-ft/h", "volume flux"),
    160: ("ac-ft/d", "volume flux"),
    161: ("imp gal", "volume"),
    162: ("imp gal/s", "volume flux"),
    163: ("imp gal/min", "volume flux"),
    164: ("imp gal/h", "volume flux"),
    165: ("imp gal/d", "volume flux"),
    166: ("US gal", "volume"),
    167: ("US gal/s", "volume flux"),
    168: ("US gal/min", "volume flux"),
    169: ("US gal/h", "volume flux"),
    170: ("US gal/d", "volume flux"),
    171: ("Btu/s", "power"),
    172: ("Btu/min", "power"),
    173: ("Btu/h", "power"),
    174: ("Btu/d", "power"),
    254: ("other", "other unit"),
    255: ("count", "count (no unit)"),
}

_BY_CODE: dict[int, Unit] = {int(u): u for u in Unit}
#: Integers below this have fewer digits than :data:`_SCALE_CONTEXT` keeps: ``scaleb`` is exact.
_EXACT = 10**27
_SCALE_CONTEXT = Context(prec=28)


def unit_symbol(unit: Unit | int) -> str:
    """The symbol of a unit code: ``"Wh"`` for 30, ``"count"`` for 255, ``"unit(58)"`` if unknown."""
    member = _BY_CODE.get(int(unit))
    return member.symbol if member is not None else f"unit({int(unit)})"


class ScalerUnit(NamedTuple):
    """A register's ``scaler_unit``: value = raw * 10**scaler, in ``unit``."""

    scaler: int
    unit: Unit | int

    @classmethod
    def from_data(cls, data: Data) -> ScalerUnit:
        """Read ``structure{integer scaler, enum unit}`` (attribute 3 of Register class 3)."""
        from metercom.model.dlms_data import DlmsType

        items = data.value
        if data.type != DlmsType.STRUCTURE or not isinstance(items, tuple) or len(items) != 2:
            raise UnitError(f"scaler_unit must be a structure of 2 members, got {data!r}")
        scaler, unit = items
        if not isinstance(scaler.value, int) or isinstance(scaler.value, bool):
            raise UnitError(f"scaler must be an integer, got {scaler!r}")
        if not isinstance(unit.value, int) or isinstance(unit.value, bool):
            raise UnitError(f"unit must be an enum, got {unit!r}")
        if not -128 <= scaler.value <= 127 or not 0 <= unit.value <= 255:
            raise UnitError(f"scaler_unit out of range: {scaler.value}, {unit.value}")
        return cls(scaler.value, Unit.lookup(unit.value))

    def to_data(self) -> Data:
        """``structure{integer scaler, enum unit}``."""
        from metercom.model.dlms_data import Data

        return Data.structure(Data.integer(self.scaler), Data.enum(int(self.unit)))

    @property
    def symbol(self) -> str:
        """The unit's symbol (see :func:`unit_symbol`)."""
        return unit_symbol(self.unit)

    def scale(self, raw: int | float | Decimal) -> Decimal:
        """``raw * 10**scaler`` as an exact ``Decimal``.

        Integers (what registers carry) scale exactly. A float (float32/float64 registers) is
        first taken at its shortest ``repr``, so ``0.1`` stays ``0.1``; inf and nan stay special.
        """
        if type(raw) is int and -_EXACT < raw < _EXACT:  # the common case, exact within precision
            return Decimal(raw).scaleb(self.scaler, _SCALE_CONTEXT)
        if isinstance(raw, bool):
            raise UnitError("a boolean cannot be scaled")
        if isinstance(raw, int):
            number = Decimal(raw)
        elif isinstance(raw, float):
            number = Decimal(repr(raw))
        elif isinstance(raw, Decimal):
            number = raw
        else:
            raise UnitError(f"cannot scale a {type(raw).__name__}")
        if not number.is_finite():
            return number
        sign, digits, exponent = number.as_tuple()
        if not isinstance(exponent, int):  # pragma: no cover - finite numbers have int exponents
            return number
        return Decimal((sign, digits, exponent + self.scaler))

    def unscale(self, value: Decimal | int) -> int:
        """The raw integer for a quantity (``value / 10**scaler``); it must come out whole."""
        number = Decimal(value)
        if not number.is_finite():
            raise UnitError(f"cannot unscale {value}")
        sign, digits, exponent = number.as_tuple()
        if not isinstance(exponent, int):  # pragma: no cover
            raise UnitError(f"cannot unscale {value}")
        raw = Decimal((sign, digits, exponent - self.scaler))
        if raw != raw.to_integral_value():
            raise UnitError(f"{value} is not a whole multiple of 10**{self.scaler}")
        return int(raw)

    def format(self, raw: int | float | Decimal) -> str:
        """``"123.456 Wh"``-style text: the scaled value (no exponent notation) and the symbol;
        a count (unit 255) has no symbol."""
        text = f"{self.scale(raw):f}"
        return text if self.unit == Unit.COUNT else f"{text} {self.symbol}"

    def __str__(self) -> str:
        return f"10^{self.scaler} {self.symbol}"
