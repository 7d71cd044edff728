"""Monthly statements: the numbers of a known month, balance continuity and the CSV."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from metercom.errors import PrepaidError
from metercom.service.prepaid import (
    CSV_FIELDS,
    PrepaidAccount,
    PrepaidTariff,
    RegisterReading,
    monthly_statement,
    statements_to_csv,
)

IST = ZoneInfo("Asia/Kolkata")
TABLE = PrepaidTariff.from_table({5: 500, 10: 650, 30: 900, 100: 1175}, currency="INR")


def _account() -> PrepaidAccount:
    acc = PrepaidAccount("acc-7", "meter-7", TABLE)
    feb = datetime(2026, 2, 27, 10, tzinfo=IST)
    acc.top_up("feb", 1000, feb)  # 650 units in February
    acc.apply_reading(RegisterReading(feb, 10_000))
    acc.apply_reading(RegisterReading(datetime(2026, 2, 28, 23, 45, tzinfo=IST), 60_000))  # 50 units in Feb
    # 1 March 00:00 IST is 28 February 18:30 UTC: a reading at 00:15 IST belongs to March.
    acc.apply_reading(RegisterReading(datetime(2026, 3, 1, 0, 15, tzinfo=IST), 61_000))
    march = datetime(2026, 3, 10, 9, tzinfo=IST)
    acc.apply_reading(RegisterReading(march, 660_000))  # 599 units -> balance 0
    acc.record_disconnect(march, "empty")
    acc.top_up("m1", 500, march + timedelta(hours=1))
    acc.top_up("m1", 500, march + timedelta(hours=1))  # a repeat: not a second top-up
    acc.top_up("m2", 10000, march + timedelta(hours=2))
    acc.record_reconnect(march + timedelta(hours=2), "topped up")
    acc.record_reminder(Decimal(300), march + timedelta(days=5))
    acc.adjust("adj", Decimal("-2.5"), march + timedelta(days=6), reason="test energy")
    acc.apply_reading(RegisterReading(datetime(2026, 3, 31, 23, 45, tzinfo=IST), 1_560_000))  # 900 units
    acc.apply_reading(RegisterReading(datetime(2026, 4, 1, 0, 15, tzinfo=IST), 1_561_000))  # April
    return acc


def test_march_numbers() -> None:
    s = monthly_statement(_account(), 2026, 3, IST)
    assert s.period_start == datetime(2026, 3, 1, tzinfo=IST)
    assert s.period_end == datetime(2026, 4, 1, tzinfo=IST)
    assert s.opening_balance == Decimal(600)  # 650 - 50
    assert s.energy_wh == 1_000 + 599_000 + 900_000
    assert s.units_used == Decimal(1500)
    assert s.charged == Decimal(1500)
    assert s.total_topped_up_minor == 10_500  # 5.00 + 100.00 INR
    assert s.top_ups == 2
    assert s.credited == Decimal(1675)
    assert s.adjustments == Decimal("-2.5")
    assert s.closing_balance == Decimal("772.5")  # 600 + 1675 - 2.5 - 1500
    assert (s.disconnections, s.reconnections, s.reminders, s.anomalies) == (1, 1, 1, 0)
    assert s.balanced


def test_months_chain_and_match_the_ledger() -> None:
    acc = _account()
    feb = monthly_statement(acc, 2026, 2, IST)
    mar = monthly_statement(acc, 2026, 3, IST)
    apr = monthly_statement(acc, 2026, 4, IST)
    assert feb.closing_balance == mar.opening_balance
    assert mar.closing_balance == apr.opening_balance
    assert apr.closing_balance == acc.balance
    assert feb.energy_wh + mar.energy_wh + apr.energy_wh == acc.energy_wh
    dec = monthly_statement(acc, 2025, 12, IST)  # before the account: all zero
    assert (dec.opening_balance, dec.closing_balance, dec.top_ups) == (0, 0, 0)
    with pytest.raises(PrepaidError, match="month"):
        monthly_statement(acc, 2026, 13, IST)


def test_csv() -> None:
    acc = _account()
    text = statements_to_csv([monthly_statement(acc, 2026, 3, IST)])
    header, row, end = text.split("\n")
    assert end == ""
    assert header.split(",") == list(CSV_FIELDS)
    values = dict(zip(CSV_FIELDS, row.split(","), strict=True))
    assert values == {
        "account_id": "acc-7",
        "meter_id": "meter-7",
        "month": "2026-03",
        "period_start": "2026-02-28T18:30:00+00:00",
        "period_end": "2026-03-31T18:30:00+00:00",
        "currency": "INR",
        "credit_unit": "units",
        "opening_balance": "600.000",
        "closing_balance": "772.500",
        "units_used": "1500",
        "energy_kwh": "1500",
        "charged": "1500.000",
        "total_topped_up": "105.00",
        "top_ups": "2",
        "credited": "1675",
        "adjustments": "-2.5",
        "disconnections": "1",
        "reconnections": "1",
        "reminders": "1",
        "anomalies": "0",
    }
