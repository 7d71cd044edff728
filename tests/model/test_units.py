"""Units and scalers (metercom.model.units): the DLMS unit table and exact Decimal scaling."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metercom.errors import MetercomError
from metercom.model.dlms_data import Data
from metercom.model.units import ScalerUnit, Unit, UnitError, unit_symbol


@pytest.mark.parametrize(
    ("code", "symbol", "name"),
    [
        (1, "a", "YEAR"),
        (6, "min", "MINUTE"),
        (7, "s", "SECOND"),
        (8, "°", "DEGREE"),
        (9, "°C", "DEGREE_CELSIUS"),
        (13, "m³", "CUBIC_METRE"),
        (27, "W", "WATT"),
        (28, "VA", "VOLT_AMPERE"),
        (29, "var", "VAR"),
        (30, "Wh", "WATT_HOUR"),
        (31, "VAh", "VOLT_AMPERE_HOUR"),
        (32, "varh", "VAR_HOUR"),
        (33, "A", "AMPERE"),
        (35, "V", "VOLT"),
        (38, "Ω", "OHM"),
        (44, "Hz", "HERTZ"),
        (45, "1/(Wh)", "PER_WATT_HOUR"),
        (52, "K", "KELVIN"),
        (56, "%", "PERCENT"),
        (57, "Ah", "AMPERE_HOUR"),
        (70, "dBm", "DECIBEL_MILLIWATT"),
        (72, "dB", "DECIBEL"),
        (254, "other", "OTHER"),
        (255, "count", "COUNT"),
    ],
)
def test_unit_table(code: int, symbol: str, name: str) -> None:
    unit = Unit(code)
    assert unit.name == name
    assert unit.symbol == symbol
    assert unit_symbol(code) == symbol
    assert unit.quantity


def test_unit_table_is_well_formed() -> None:
    codes = [int(u) for u in Unit]
    assert len(codes) == len(set(codes))
    assert all(1 <= c <= 255 for c in codes)
    assert set(range(1, 58)) <= set(codes)
    assert all(u.symbol for u in Unit)


def test_unknown_units_are_kept() -> None:
    assert Unit.lookup(30) is Unit.WATT_HOUR
    assert Unit.lookup(58) == 58
    assert not isinstance(Unit.lookup(58), Unit)
    assert unit_symbol(58) == "unit(58)"
    assert unit_symbol(0) == "unit(0)"
    scaler_unit = ScalerUnit.from_data(Data.structure(Data.integer(-2), Data.enum(0)))
    assert scaler_unit == ScalerUnit(-2, 0)
    assert scaler_unit.format(12345) == "123.45 unit(0)"


def test_scale_is_exact() -> None:
    assert ScalerUnit(-3, Unit.WATT_HOUR).scale(123456) == Decimal("123.456")
    assert str(ScalerUnit(-3, Unit.WATT_HOUR).scale(123456)) == "123.456"
    assert ScalerUnit(2, Unit.WATT).scale(5) == Decimal(500)
    assert ScalerUnit(0, Unit.VOLT).scale(-7) == Decimal(-7)
    # beyond the default 28-digit Decimal context: still exact
    big = 2**64 - 1
    assert ScalerUnit(-4, Unit.WATT_HOUR).scale(big) == Decimal("1844674407370955.1615")
    assert ScalerUnit(-128, Unit.COUNT).scale(1) == Decimal("1E-128")
    # integers on both sides of the fast path's bound scale to the same exact digits and exponent
    for raw in (0, 1, -1, 10**27 - 1, -(10**27) + 1, 10**27, -(10**27), 10**40 + 1, -(2**127)):
        for scaler in (-128, -3, 0, 2, 127):
            sign, digits, exponent = Decimal(raw).as_tuple()
            expected = Decimal((sign, digits, int(exponent) + scaler))
            assert ScalerUnit(scaler, Unit.WATT_HOUR).scale(raw).as_tuple() == expected.as_tuple()
    # floats take their shortest repr, specials stay special
    assert ScalerUnit(-1, Unit.VOLT).scale(2307.5) == Decimal("230.75")
    assert ScalerUnit(0, Unit.VOLT).scale(0.1) == Decimal("0.1")
    assert ScalerUnit(3, Unit.VOLT).scale(float("inf")) == Decimal("Infinity")
    assert ScalerUnit(3, Unit.VOLT).scale(float("nan")).is_nan()
    assert ScalerUnit(-1, Unit.VOLT).scale(Decimal("2.5")) == Decimal("0.25")
    with pytest.raises(UnitError):
        ScalerUnit(0, Unit.VOLT).scale(True)
    with pytest.raises(UnitError):
        ScalerUnit(0, Unit.VOLT).scale("1")  # type: ignore[arg-type]


def test_unscale() -> None:
    scaler_unit = ScalerUnit(-3, Unit.WATT_HOUR)
    assert scaler_unit.unscale(Decimal("123.456")) == 123456
    assert ScalerUnit(2, Unit.WATT).unscale(500) == 5
    with pytest.raises(UnitError, match="whole multiple"):
        ScalerUnit(2, Unit.WATT).unscale(550)
    with pytest.raises(UnitError):
        scaler_unit.unscale(Decimal("NaN"))


@given(st.integers(-(2**63), 2**64), st.integers(-128, 127))
def test_scale_unscale_round_trip(raw: int, scaler: int) -> None:
    scaler_unit = ScalerUnit(scaler, Unit.WATT_HOUR)
    quantity = scaler_unit.scale(raw)
    assert quantity == Decimal(raw) * Decimal(10) ** scaler or quantity.adjusted() > 28
    assert scaler_unit.unscale(quantity) == raw


def test_format_and_str() -> None:
    assert ScalerUnit(-3, Unit.WATT_HOUR).format(123456) == "123.456 Wh"
    assert ScalerUnit(2, Unit.WATT).format(5) == "500 W"
    assert ScalerUnit(0, Unit.COUNT).format(17) == "17"
    assert str(ScalerUnit(-1, Unit.VOLT)) == "10^-1 V"
    assert ScalerUnit(-1, Unit.VOLT).symbol == "V"


def test_from_and_to_data() -> None:
    data = Data.structure(Data.integer(-1), Data.enum(35))
    scaler_unit = ScalerUnit.from_data(data)
    assert scaler_unit == ScalerUnit(-1, Unit.VOLT)
    assert scaler_unit.unit is Unit.VOLT
    assert scaler_unit.to_data() == data
    for bad in (
        Data.unsigned(1),
        Data.structure(Data.integer(1)),
        Data.structure(Data.octet_string(b"x"), Data.enum(1)),
        Data.structure(Data.integer(1), Data.boolean(True)),
        Data.structure(Data.long(300), Data.enum(1)),
    ):
        with pytest.raises(UnitError):
            ScalerUnit.from_data(bad)
    assert isinstance(UnitError("x"), MetercomError)
