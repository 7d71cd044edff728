"""Prepaid tariffs: what a top-up buys, and what consumed energy costs.

Rule: money is integer minor units of a currency (paise, cents) and everything derived from it
is :class:`~decimal.Decimal`; a float never enters. Amounts a person types ("5", "10.50") are
converted once with :meth:`PrepaidTariff.to_minor`, which refuses fractions of a minor unit.

Two kinds of tariff, chosen by constructor; the kind fixes what the account's balance counts
(its *credit unit*):

* :meth:`PrepaidTariff.from_table` - a **top-up table**: a top-up of a listed amount credits the
  listed number of energy units (the issue's ``5 -> 500, 10 -> 650, 30 -> 900, 100 -> 1175``).
  The balance is in energy units (``unit_wh`` Wh each, 1 kWh by default: the "units" of an
  Indian electricity bill) and consumption debits one unit per ``unit_wh`` Wh at any hour.
  Amounts *between* rows follow ``between_rows``:

  - :attr:`BetweenRows.EXACT` (default): only listed amounts are accepted; any other amount is
    refused with :class:`~metercom.errors.PrepaidError` naming the accepted amounts. Tables
    like the example are not linear (a larger top-up buys fewer units per rupee), so any rule
    for other amounts is a commercial decision, not arithmetic.
  - :attr:`BetweenRows.INTERPOLATE`: piecewise-linear between the two neighbouring rows
    (7.50 between 5 -> 500 and 10 -> 650 buys 575 units); below the first row or above the
    last is refused. Results are rounded half-even to ``quantum`` (0.001 unit = 1 Wh).

* :meth:`PrepaidTariff.per_kwh` - a **price per kWh** with optional **time-of-use** windows.
  The balance is money (minor units, Decimal, fractions of a minor unit allowed in charges):
  a top-up credits its amount and consumption debits energy x price. The price is the first
  :class:`TouWindow` (local wall time in ``zone``, see :mod:`.windows`) containing the instant,
  else the base price. Energy read between two register readings that spans a price boundary
  is split in proportion to time (the meter's power is unknown between two readings); the split
  is made in whole Wh with largest remainders, so no Wh is created or lost.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta, tzinfo
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Final

from metercom.errors import ConfigError, PrepaidError
from metercom.service.prepaid.windows import ALL_DAYS, DailyWindow

__all__ = [
    "BetweenRows",
    "CreditUnit",
    "PrepaidTariff",
    "TopUpRow",
    "TouWindow",
    "decimal_value",
]

_WH_PER_KWH: Final = 1000
_MICROSECOND: Final = timedelta(microseconds=1)


class BetweenRows(enum.StrEnum):
    """How a top-up table treats an amount that is not one of its rows."""

    EXACT = "exact"
    INTERPOLATE = "interpolate"


class CreditUnit(enum.StrEnum):
    """What an account's balance counts."""

    #: Energy units (``unit_wh`` Wh each); top-up tables.
    ENERGY = "energy"
    #: Currency minor units; price-per-kWh tariffs.
    MONEY = "money"


def decimal_value(value: Decimal | int | str, what: str) -> Decimal:
    """``value`` as a finite Decimal; floats and bools are refused (money never goes through float)."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise ConfigError(f"{what} must be a Decimal, int or decimal string, not {type(value).__name__}")
    try:
        result = Decimal(value)
    except InvalidOperation:
        raise ConfigError(f"{what} is not a decimal number: {value!r}") from None
    if not result.is_finite():
        raise ConfigError(f"{what} must be finite, got {value!r}")
    return result


@dataclass(frozen=True, slots=True)
class TopUpRow:
    """One row of a top-up table: ``amount_minor`` buys ``units``."""

    amount_minor: int
    units: Decimal


@dataclass(frozen=True, slots=True)
class TouWindow:
    """A time-of-use price: ``price_minor_per_kwh`` during local ``start``-``end`` on ``weekdays``.

    Edges follow :class:`~metercom.service.prepaid.windows.DailyWindow` (``end <= start`` runs past
    midnight; ``weekdays`` are the days the window starts on, Monday = 0).
    """

    start: time
    end: time
    price_minor_per_kwh: Decimal
    weekdays: frozenset[int] = ALL_DAYS
    name: str = ""

    @property
    def window(self) -> DailyWindow:
        return DailyWindow(self.start, self.end, self.weekdays, self.name)


@dataclass(frozen=True)
class PrepaidTariff:
    """A prepaid tariff; build it with :meth:`from_table` or :meth:`per_kwh` (see the module docstring)."""

    currency: str
    credit_unit: CreditUnit
    minor_digits: int = 2
    rows: tuple[TopUpRow, ...] = ()
    between_rows: BetweenRows = BetweenRows.EXACT
    unit_wh: int = _WH_PER_KWH
    price_minor_per_kwh: Decimal | None = None
    tou: tuple[TouWindow, ...] = ()
    zone: tzinfo = UTC
    quantum: Decimal = Decimal("0.001")
    _windows: tuple[DailyWindow, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (len(self.currency) == 3 and self.currency.isalpha() and self.currency.isupper()):
            raise ConfigError(f"currency must be an ISO 4217 code like INR, got {self.currency!r}")
        if not 0 <= self.minor_digits <= 4:
            raise ConfigError(f"minor_digits must be 0..4, got {self.minor_digits}")
        if self.unit_wh <= 0:
            raise ConfigError(f"unit_wh must be positive, got {self.unit_wh}")
        if self.quantum <= 0:
            raise ConfigError(f"quantum must be positive, got {self.quantum}")
        if self.credit_unit is CreditUnit.ENERGY:
            if not self.rows:
                raise ConfigError("a top-up table needs at least one row")
            amounts = [row.amount_minor for row in self.rows]
            if amounts != sorted(set(amounts)) or amounts[0] <= 0:
                raise ConfigError("top-up amounts must be positive, distinct and ascending")
            if any(row.units <= 0 for row in self.rows):
                raise ConfigError("every top-up row must credit a positive number of units")
            if self.price_minor_per_kwh is not None or self.tou:
                raise ConfigError(
                    "a top-up table tariff has no price per kWh (use per_kwh for money balances)"
                )
        else:
            if self.price_minor_per_kwh is None or self.price_minor_per_kwh < 0:
                raise ConfigError("a price-per-kWh tariff needs a non-negative price_minor_per_kwh")
            if self.rows:
                raise ConfigError("a price-per-kWh tariff has no top-up table")
            if any(w.price_minor_per_kwh < 0 for w in self.tou):
                raise ConfigError("time-of-use prices must not be negative")
        object.__setattr__(self, "_windows", tuple(w.window for w in self.tou))

    # ---- constructors

    @classmethod
    def from_table(
        cls,
        table: Mapping[Decimal | int | str, Decimal | int | str],
        *,
        currency: str,
        minor_digits: int = 2,
        between_rows: BetweenRows = BetweenRows.EXACT,
        unit_wh: int = _WH_PER_KWH,
    ) -> PrepaidTariff:
        """A top-up table from ``{amount in major units: units}``: ``{5: 500, 10: 650}``."""
        rows = [
            TopUpRow(
                _to_minor(decimal_value(amount, "top-up amount"), minor_digits),
                decimal_value(units, "top-up units"),
            )
            for amount, units in table.items()
        ]
        rows.sort(key=lambda row: row.amount_minor)
        return cls(
            currency=currency,
            credit_unit=CreditUnit.ENERGY,
            minor_digits=minor_digits,
            rows=tuple(rows),
            between_rows=between_rows,
            unit_wh=unit_wh,
        )

    @classmethod
    def per_kwh(
        cls,
        price_minor_per_kwh: Decimal | int | str,
        *,
        currency: str,
        minor_digits: int = 2,
        tou: Sequence[TouWindow] = (),
        zone: tzinfo = UTC,
        quantum: Decimal = Decimal("0.001"),
    ) -> PrepaidTariff:
        """A money balance charged at ``price_minor_per_kwh`` (paise per kWh), or a ``tou`` window's price."""
        return cls(
            currency=currency,
            credit_unit=CreditUnit.MONEY,
            minor_digits=minor_digits,
            price_minor_per_kwh=decimal_value(price_minor_per_kwh, "price per kWh"),
            tou=tuple(tou),
            zone=zone,
            quantum=quantum,
        )

    # ---- money

    def to_minor(self, amount: Decimal | int | str) -> int:
        """A major amount (``"10.50"``) in minor units (1050); fractions of a minor unit are refused."""
        return _to_minor(decimal_value(amount, "amount"), self.minor_digits)

    def format_minor(self, amount_minor: int) -> str:
        """Minor units as a major amount string: ``1050 -> "10.50"``."""
        return str(
            Decimal(amount_minor).scaleb(-self.minor_digits).quantize(Decimal(1).scaleb(-self.minor_digits))
        )

    @property
    def unit_label(self) -> str:
        """What the balance counts, for messages: ``"units"`` or ``"INR minor units"``."""
        if self.credit_unit is CreditUnit.ENERGY:
            return "units" if self.unit_wh == _WH_PER_KWH else f"units of {self.unit_wh} Wh"
        return f"{self.currency} minor units"

    # ---- credit

    def credit_for(self, amount_minor: int) -> Decimal:
        """What a top-up of ``amount_minor`` credits to the balance (see the module docstring)."""
        if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
            raise PrepaidError(f"top-up amounts are integer minor units, got {type(amount_minor).__name__}")
        if amount_minor <= 0:
            raise PrepaidError(
                f"a top-up must be positive, got {self.format_minor(amount_minor)} {self.currency}"
            )
        if self.credit_unit is CreditUnit.MONEY:
            return Decimal(amount_minor)
        for row in self.rows:
            if row.amount_minor == amount_minor:
                return row.units
        if self.between_rows is BetweenRows.INTERPOLATE:
            for low, high in zip(self.rows, self.rows[1:], strict=False):
                if low.amount_minor < amount_minor < high.amount_minor:
                    slope = (high.units - low.units) / Decimal(high.amount_minor - low.amount_minor)
                    units = low.units + slope * Decimal(amount_minor - low.amount_minor)
                    return units.quantize(self.quantum, rounding=ROUND_HALF_EVEN)
            first, last = self.rows[0].amount_minor, self.rows[-1].amount_minor
            span = f"{self.format_minor(first)}..{self.format_minor(last)}"
            raise PrepaidError(
                f"top-up of {self.format_minor(amount_minor)} {self.currency} is outside the table ({span})"
            )
        accepted = ", ".join(self.format_minor(row.amount_minor) for row in self.rows)
        raise PrepaidError(
            f"top-up of {self.format_minor(amount_minor)} {self.currency} is not in the tariff table; "
            f"accepted amounts: {accepted}"
        )

    # ---- charges

    def price_at(self, at: datetime) -> Decimal:
        """The price (minor units per kWh) in force at ``at``; price-per-kWh tariffs only."""
        if self.price_minor_per_kwh is None:
            raise PrepaidError("a top-up table tariff has no price per kWh")
        t = _utc(at)
        for tou, window in zip(self.tou, self._windows, strict=True):
            for start, end in window.intervals_around(t, self.zone):
                if start <= t < end:
                    return tou.price_minor_per_kwh
        return self.price_minor_per_kwh

    def _next_edge(self, t: datetime) -> datetime | None:
        edges = [
            edge
            for window in self._windows
            for interval in window.intervals_around(t, self.zone)
            for edge in interval
            if edge > t
        ]
        return min(edges) if edges else None

    def price_segments(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime, Decimal]]:
        """``[start, end)`` cut at every price change: ``(from, to, price)`` rows, UTC."""
        a, b = _utc(start), _utc(end)
        if b <= a:
            return [(a, a, self.price_at(a))]
        segments: list[tuple[datetime, datetime, Decimal]] = []
        t = a
        while t < b:
            edge = self._next_edge(t)
            stop = b if edge is None or edge >= b else edge
            price = self.price_at(t)
            if segments and segments[-1][2] == price:
                segments[-1] = (segments[-1][0], stop, price)
            else:
                segments.append((t, stop, price))
            t = stop
        return segments

    def charge(self, energy_wh: int, start: datetime, end: datetime) -> Decimal:
        """What ``energy_wh`` consumed between ``start`` and ``end`` debits from the balance."""
        if energy_wh < 0:
            raise PrepaidError(f"consumed energy cannot be negative ({energy_wh} Wh)")
        if energy_wh == 0:
            return Decimal(0)
        if self.credit_unit is CreditUnit.ENERGY:
            units = Decimal(energy_wh) / Decimal(self.unit_wh)
            return units.quantize(self.quantum, rounding=ROUND_HALF_EVEN)
        segments = self.price_segments(start, end)
        shares = _split(energy_wh, [(stop - begin) // _MICROSECOND for begin, stop, _ in segments])
        total = sum(
            (Decimal(wh) * price / _WH_PER_KWH for wh, (_, _, price) in zip(shares, segments, strict=True)),
            Decimal(0),
        )
        return total.quantize(self.quantum, rounding=ROUND_HALF_EVEN)


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise PrepaidError(f"times must be timezone-aware, got {at!r}")
    return at.astimezone(UTC)


def _to_minor(amount: Decimal, digits: int) -> int:
    scaled = amount.scaleb(digits)
    if scaled != scaled.to_integral_value():
        raise PrepaidError(f"{amount} has more than {digits} decimal places (fractions of a minor unit)")
    return int(scaled)


def _split(total: int, weights: Sequence[int]) -> list[int]:
    """``total`` split in proportion to integer ``weights`` (largest remainder), summing exactly."""
    whole = sum(weights)
    if len(weights) == 1 or whole == 0:
        return [total] + [0] * (len(weights) - 1)
    shares = [total * w // whole for w in weights]
    remainders = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % whole), i))
    for i in remainders[: total - sum(shares)]:
        shares[i] += 1
    return shares
