"""Monthly prepaid statements for the utility: one row per meter and calendar month.

Rule: a statement is a pure fold of the ledger over one local calendar month
``[first day 00:00, first day of next month 00:00)`` in the utility's zone, and it balances:
``closing = opening + topped up credit + adjustments - charged``. Every event counts in the
month of its own time: a top-up when it was credited, consumption at the capture time of the
reading that measured it (so energy used in the last minutes of a month and read after
midnight counts in the next month; with 15-minute readings this is at most one interval).

CSV: :func:`statements_to_csv` writes the rows with a header (:data:`CSV_FIELDS`), decimals in
plain notation, money in major units with the currency in its own column, times ISO 8601.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, tzinfo
from decimal import Decimal
from typing import Final

from metercom.errors import PrepaidError
from metercom.service.prepaid.ledger import (
    AdjustmentEvent,
    LedgerEvent,
    PrepaidAccount,
    ReadingEvent,
    ReadingStatus,
    RebaseEvent,
    RelayAction,
    RelayEvent,
    TopUpEvent,
)
from metercom.service.prepaid.windows import local_instant

__all__ = ["CSV_FIELDS", "MonthlyStatement", "monthly_statement", "statements_to_csv"]

CSV_FIELDS: Final = (
    "account_id",
    "meter_id",
    "month",
    "period_start",
    "period_end",
    "currency",
    "credit_unit",
    "opening_balance",
    "closing_balance",
    "units_used",
    "energy_kwh",
    "charged",
    "total_topped_up",
    "top_ups",
    "credited",
    "adjustments",
    "disconnections",
    "reconnections",
    "reminders",
    "anomalies",
)


@dataclass(frozen=True, slots=True)
class MonthlyStatement:
    """One meter's month. Balances and ``charged`` are in the tariff's credit unit.

    ``units_used`` is energy in tariff units (``unit_wh`` Wh each; kWh by default) and
    ``energy_wh`` the same in Wh; ``total_topped_up_minor`` is money paid, in minor units.
    """

    account_id: str
    meter_id: str
    year: int
    month: int
    period_start: datetime
    period_end: datetime
    currency: str
    credit_unit: str
    opening_balance: Decimal
    closing_balance: Decimal
    energy_wh: int
    units_used: Decimal
    charged: Decimal
    total_topped_up_minor: int
    top_ups: int
    credited: Decimal
    adjustments: Decimal
    disconnections: int
    reconnections: int
    reminders: int
    anomalies: int

    @property
    def balanced(self) -> bool:
        """True when opening + credited + adjustments - charged == closing (always, by construction)."""
        return self.opening_balance + self.credited + self.adjustments - self.charged == self.closing_balance


def _effect(event: LedgerEvent) -> Decimal:
    if isinstance(event, TopUpEvent | AdjustmentEvent):
        return event.credit
    if isinstance(event, ReadingEvent | RebaseEvent):
        return -event.charge
    return Decimal(0)


def monthly_statement(account: PrepaidAccount, year: int, month: int, zone: tzinfo = UTC) -> MonthlyStatement:
    """The statement of ``account`` for ``year``-``month`` in local time of ``zone``."""
    if not 1 <= month <= 12:
        raise PrepaidError(f"month must be 1..12, got {month}")
    start = local_instant(date(year, month, 1), time(0), zone)
    end = local_instant(date(year + month // 12, month % 12 + 1, 1), time(0), zone)
    opening = Decimal(0)
    energy = 0
    charged = credited = adjustments = Decimal(0)
    paid = top_ups = disconnections = reconnections = reminders = anomalies = 0
    for event in account.events:
        if event.at < start:
            opening += _effect(event)
            continue
        if event.at >= end:
            continue
        if isinstance(event, TopUpEvent):
            top_ups += 1
            paid += event.amount_minor
            credited += event.credit
        elif isinstance(event, AdjustmentEvent):
            adjustments += event.credit
        elif isinstance(event, ReadingEvent | RebaseEvent):
            energy += event.energy_wh
            charged += event.charge
            if isinstance(event, ReadingEvent) and event.status in (
                ReadingStatus.DECREASE,
                ReadingStatus.JUMP,
            ):
                anomalies += 1
        elif isinstance(event, RelayEvent):
            if event.action is RelayAction.DISCONNECT:
                disconnections += 1
            else:
                reconnections += 1
        elif event.sent:
            reminders += 1
    tariff = account.tariff
    return MonthlyStatement(
        account_id=account.account_id,
        meter_id=account.meter_id,
        year=year,
        month=month,
        period_start=start,
        period_end=end,
        currency=tariff.currency,
        credit_unit=tariff.unit_label,
        opening_balance=opening,
        closing_balance=opening + credited + adjustments - charged,
        energy_wh=energy,
        units_used=Decimal(energy) / Decimal(tariff.unit_wh),
        charged=charged,
        total_topped_up_minor=paid,
        top_ups=top_ups,
        credited=credited,
        adjustments=adjustments,
        disconnections=disconnections,
        reconnections=reconnections,
        reminders=reminders,
        anomalies=anomalies,
    )


def _plain(value: Decimal) -> str:
    return f"{value:f}"


def statements_to_csv(statements: Iterable[MonthlyStatement], minor_digits: int = 2) -> str:
    """CSV text of ``statements`` with a header row (columns :data:`CSV_FIELDS`)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    quantum = Decimal(1).scaleb(-minor_digits)
    for s in statements:
        writer.writerow(
            [
                s.account_id,
                s.meter_id,
                f"{s.year:04d}-{s.month:02d}",
                s.period_start.isoformat(),
                s.period_end.isoformat(),
                s.currency,
                s.credit_unit,
                _plain(s.opening_balance),
                _plain(s.closing_balance),
                _plain(s.units_used),
                _plain(Decimal(s.energy_wh) / 1000),
                _plain(s.charged),
                _plain(Decimal(s.total_topped_up_minor).scaleb(-minor_digits).quantize(quantum)),
                s.top_ups,
                _plain(s.credited),
                _plain(s.adjustments),
                s.disconnections,
                s.reconnections,
                s.reminders,
                s.anomalies,
            ]
        )
    return out.getvalue()
