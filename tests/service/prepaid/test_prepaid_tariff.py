"""Prepaid tariffs: the issue's top-up table exactly, amounts between rows, price per kWh with time-of-use."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from metercom.errors import ConfigError, PrepaidError
from metercom.service.prepaid import BetweenRows, CreditUnit, PrepaidTariff, TouWindow

IST = ZoneInfo("Asia/Kolkata")
EXAMPLE = {5: 500, 10: 650, 30: 900, 100: 1175}


def test_issue_table_rows_exactly() -> None:
    tariff = PrepaidTariff.from_table(EXAMPLE, currency="INR")
    assert tariff.credit_unit is CreditUnit.ENERGY
    assert [(r.amount_minor, r.units) for r in tariff.rows] == [
        (500, Decimal(500)),
        (1000, Decimal(650)),
        (3000, Decimal(900)),
        (10000, Decimal(1175)),
    ]
    for amount, units in EXAMPLE.items():
        credit = tariff.credit_for(tariff.to_minor(amount))
        assert credit == Decimal(units)
        assert isinstance(credit, Decimal)


def test_exact_table_refuses_other_amounts_and_names_the_accepted_ones() -> None:
    tariff = PrepaidTariff.from_table(EXAMPLE, currency="INR")
    with pytest.raises(
        PrepaidError, match=r"7\.50 INR is not in the tariff table; accepted amounts: 5\.00, 10\.00"
    ):
        tariff.credit_for(750)
    with pytest.raises(PrepaidError, match="positive"):
        tariff.credit_for(0)
    with pytest.raises(PrepaidError, match="integer minor units"):
        tariff.credit_for(Decimal(500))  # type: ignore[arg-type]


def test_interpolated_table_is_piecewise_linear_within_the_rows() -> None:
    tariff = PrepaidTariff.from_table(EXAMPLE, currency="INR", between_rows=BetweenRows.INTERPOLATE)
    assert tariff.credit_for(750) == Decimal(575)  # halfway between 5 -> 500 and 10 -> 650
    assert tariff.credit_for(2000) == Decimal(775)  # 650 + (900 - 650) / 2
    assert tariff.credit_for(6500) == Decimal("1037.5")  # 900 + 275 * 35 / 70
    assert tariff.credit_for(1001) == Decimal("650.125")  # 650 + 250 / 2000 per paisa
    assert tariff.credit_for(10000) == Decimal(1175)  # a listed row stays exact
    with pytest.raises(PrepaidError, match="outside the table"):
        tariff.credit_for(499)
    with pytest.raises(PrepaidError, match="outside the table"):
        tariff.credit_for(10001)


def test_money_conversion_never_uses_float() -> None:
    tariff = PrepaidTariff.from_table(EXAMPLE, currency="INR")
    assert tariff.to_minor("10.50") == 1050
    assert tariff.to_minor(Decimal("0.01")) == 1
    assert tariff.format_minor(117500) == "1175.00"
    with pytest.raises(PrepaidError, match="fractions of a minor unit"):
        tariff.to_minor("0.005")
    with pytest.raises(ConfigError, match="not float"):
        tariff.to_minor(5.0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="not float"):
        PrepaidTariff.from_table({5: 500.0}, currency="INR")  # type: ignore[dict-item]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({}, "at least one row"),
        ({5: 0}, "positive number of units"),
        ({0: 10}, "positive, distinct"),
    ],
)
def test_bad_tables_are_configuration_errors(table: dict[int, int], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PrepaidTariff.from_table(table, currency="INR")


def test_energy_charge_is_one_unit_per_kwh() -> None:
    tariff = PrepaidTariff.from_table(EXAMPLE, currency="INR")
    t0 = datetime(2026, 3, 2, tzinfo=UTC)
    assert tariff.charge(1234, t0, t0 + timedelta(minutes=15)) == Decimal("1.234")
    assert tariff.charge(0, t0, t0) == 0
    scaled = PrepaidTariff.from_table(EXAMPLE, currency="INR", unit_wh=10)
    assert scaled.charge(1234, t0, t0 + timedelta(minutes=15)) == Decimal("123.4")
    assert scaled.unit_label == "units of 10 Wh"


def _tou() -> PrepaidTariff:
    return PrepaidTariff.per_kwh(
        "650",  # 6.50 INR per kWh
        currency="INR",
        zone=IST,
        tou=(
            TouWindow(time(18), time(22), Decimal(900), name="peak"),
            TouWindow(time(22), time(6), Decimal(450), name="night"),
        ),
    )


def test_time_of_use_prices_by_local_time() -> None:
    tariff = _tou()
    assert tariff.credit_unit is CreditUnit.MONEY
    assert tariff.credit_for(10000) == Decimal(10000)  # a money balance credits the amount
    assert tariff.price_at(datetime(2026, 3, 2, 12, tzinfo=IST)) == Decimal(650)
    assert tariff.price_at(datetime(2026, 3, 2, 18, tzinfo=IST)) == Decimal(900)
    assert tariff.price_at(datetime(2026, 3, 2, 21, 59, tzinfo=IST)) == Decimal(900)
    assert tariff.price_at(datetime(2026, 3, 2, 22, tzinfo=IST)) == Decimal(450)
    assert tariff.price_at(datetime(2026, 3, 3, 5, 59, tzinfo=IST)) == Decimal(450)
    assert tariff.price_at(datetime(2026, 3, 3, 6, tzinfo=IST)) == Decimal(650)


def test_time_of_use_charge_splits_an_interval_across_a_boundary() -> None:
    tariff = _tou()
    start = datetime(2026, 3, 2, 17, 45, tzinfo=IST)
    # 1000 Wh over 17:45-18:15: 500 Wh at 6.50 and 500 Wh at 9.00 -> 325 + 450 paise.
    assert tariff.charge(1000, start, start + timedelta(minutes=30)) == Decimal(775)
    segments = tariff.price_segments(start, start + timedelta(minutes=30))
    assert [p for _, _, p in segments] == [Decimal(650), Decimal(900)]
    # Whole Wh are kept: 1001 Wh split 500/501 (largest remainder), never 1000.5 Wh.
    assert tariff.charge(1001, start, start + timedelta(minutes=30)) == Decimal("775.65")  # 501 + 500 Wh
    # A long gap (meter unreachable for a day) splits over every window of the day.
    day = datetime(2026, 3, 2, 6, tzinfo=IST)
    total = tariff.charge(24000, day, day + timedelta(days=1))
    # 12 h @ 6.50, 4 h @ 9.00, 8 h @ 4.50 with 1 kWh per hour.
    assert total == Decimal(12 * 650 + 4 * 900 + 8 * 450)


def test_price_tariff_validation() -> None:
    with pytest.raises(ConfigError, match="ISO 4217"):
        PrepaidTariff.per_kwh("650", currency="rupees")
    with pytest.raises(ConfigError, match="non-negative"):
        PrepaidTariff.per_kwh("-1", currency="INR")
    with pytest.raises(PrepaidError, match="no price per kWh"):
        PrepaidTariff.from_table(EXAMPLE, currency="INR").price_at(datetime(2026, 1, 1, tzinfo=UTC))
    with pytest.raises(PrepaidError, match="timezone-aware"):
        _tou().price_at(datetime(2026, 1, 1))  # noqa: DTZ001
