"""Prepaid electricity: accounts per meter, tariffs, reminders, disconnects and statements.

Rule: the domain is pure and the head-end does the I/O. Nothing here reads a clock on its own
(callers pass ``now``; :class:`PrepaidRunner` asks the injected clock), stores anything or talks
to a meter; money is integer minor units or :class:`~decimal.Decimal`, never float; every time
is timezone-aware. Refusals raise :class:`~metercom.errors.PrepaidError`, bad configuration
:class:`~metercom.errors.ConfigError`.

Theory of operation, one collection cycle of one meter (see each module's docstring):

1. The head-end reads the meter's cumulative import register (and its relay state) and calls
   :meth:`PrepaidRunner.run_cycle`, which applies the reading to the :class:`PrepaidAccount`
   (:mod:`.ledger`: an event-sourced ledger; balance = credited - consumed units; repeated,
   stale, decreasing and wrapping readings handled explicitly).
2. :class:`PrepaidController` (:mod:`.controller`) decides: a reminder when a level is crossed,
   a disconnect at zero unless a :class:`ProtectedWindows` period (:mod:`.windows`: nights,
   Sundays, holidays, DST-safe) holds it, a reconnect once a top-up lifted the balance again.
3. The runner switches the relay through the head-end's :class:`RelayCommander`, tells a
   :class:`PrepaidNotifier` (the alarm centre's adapter) and records what succeeded.

Top-ups arrive through :meth:`PrepaidAccount.top_up` with an idempotency key; the credit comes
from the :class:`PrepaidTariff` (:mod:`.tariff`: a top-up table or a price per kWh with
time-of-use). :func:`monthly_statement` and :func:`statements_to_csv` (:mod:`.statement`) report
per meter and month. The head-end persists the ledger rows of
:meth:`PrepaidAccount.to_records` and rebuilds with :meth:`PrepaidAccount.from_records`.
"""

from __future__ import annotations

from metercom.service.prepaid.controller import (
    CycleReport,
    Decision,
    Disconnect,
    NoticeKind,
    PrepaidAction,
    PrepaidController,
    PrepaidNotice,
    PrepaidNotifier,
    PrepaidPolicy,
    PrepaidRunner,
    Reconnect,
    RelayCommander,
    RelayState,
    Remind,
)
from metercom.service.prepaid.ledger import (
    RECORD_FIELDS,
    AdjustmentEvent,
    LedgerEvent,
    PrepaidAccount,
    ReadingEvent,
    ReadingPolicy,
    ReadingResult,
    ReadingStatus,
    RebaseCause,
    RebaseEvent,
    RegisterReading,
    RelayAction,
    RelayEvent,
    ReminderEvent,
    TopUpEvent,
    TopUpResult,
)
from metercom.service.prepaid.statement import (
    CSV_FIELDS,
    MonthlyStatement,
    monthly_statement,
    statements_to_csv,
)
from metercom.service.prepaid.tariff import BetweenRows, CreditUnit, PrepaidTariff, TopUpRow, TouWindow
from metercom.service.prepaid.windows import ALL_DAYS, DailyWindow, ProtectedWindows, local_instant

__all__ = [
    "ALL_DAYS",
    "CSV_FIELDS",
    "RECORD_FIELDS",
    "AdjustmentEvent",
    "BetweenRows",
    "CreditUnit",
    "CycleReport",
    "DailyWindow",
    "Decision",
    "Disconnect",
    "LedgerEvent",
    "MonthlyStatement",
    "NoticeKind",
    "PrepaidAccount",
    "PrepaidAction",
    "PrepaidController",
    "PrepaidNotice",
    "PrepaidNotifier",
    "PrepaidPolicy",
    "PrepaidRunner",
    "PrepaidTariff",
    "ProtectedWindows",
    "ReadingEvent",
    "ReadingPolicy",
    "ReadingResult",
    "ReadingStatus",
    "RebaseCause",
    "RebaseEvent",
    "Reconnect",
    "RegisterReading",
    "RelayAction",
    "RelayCommander",
    "RelayEvent",
    "RelayState",
    "Remind",
    "ReminderEvent",
    "TopUpEvent",
    "TopUpResult",
    "TopUpRow",
    "TouWindow",
    "local_instant",
    "monthly_statement",
    "statements_to_csv",
]
