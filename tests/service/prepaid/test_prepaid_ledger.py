"""The prepaid ledger: idempotent top-ups, consumption from cumulative registers, reminders, persistence."""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from metercom.errors import PrepaidError
from metercom.service.prepaid import (
    RECORD_FIELDS,
    PrepaidAccount,
    PrepaidTariff,
    ReadingPolicy,
    ReadingStatus,
    RebaseCause,
    RebaseEvent,
    RegisterReading,
    TopUpEvent,
)

T0 = datetime(2026, 3, 2, tzinfo=UTC)
TABLE = PrepaidTariff.from_table({5: 500, 10: 650, 30: 900, 100: 1175}, currency="INR")
LEVELS = (Decimal(300), Decimal(200), Decimal(100))


def _account(policy: ReadingPolicy | None = None) -> PrepaidAccount:
    return PrepaidAccount("acc-1", "meter-1", TABLE, policy=policy)


def _at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def _read(acc: PrepaidAccount, minutes: int, wh: int) -> ReadingStatus:
    return acc.apply_reading(RegisterReading(_at(minutes), wh)).status


# ---- top-ups


def test_same_key_twice_credits_once() -> None:
    acc = _account()
    first = acc.top_up("upi-123", 1000, T0, reference="UPI 123")
    again = acc.top_up("upi-123", 1000, T0 + timedelta(minutes=5))
    assert not first.duplicate
    assert again.duplicate
    assert again.event is first.event
    assert acc.balance == Decimal(650)
    assert len([e for e in acc.events if isinstance(e, TopUpEvent)]) == 1
    assert acc.top_up_for("upi-123") is first.event


def test_same_key_with_another_amount_is_refused() -> None:
    acc = _account()
    acc.top_up("upi-123", 1000, T0)
    with pytest.raises(PrepaidError, match=r"key 'upi-123' was already used for 10\.00 INR.*5\.00 INR"):
        acc.top_up("upi-123", 500, T0)
    assert acc.balance == Decimal(650)


def test_unknown_amount_credits_nothing() -> None:
    acc = _account()
    with pytest.raises(PrepaidError, match="not in the tariff table"):
        acc.top_up("k", 700, T0)
    assert acc.events == ()
    with pytest.raises(PrepaidError, match="idempotency key"):
        acc.top_up("  ", 500, T0)
    with pytest.raises(PrepaidError, match="timezone-aware"):
        acc.top_up("k", 500, datetime(2026, 3, 2))  # noqa: DTZ001


async def test_concurrent_requests_with_one_key_credit_once() -> None:
    acc = _account()

    async def request(delay_s: float) -> bool:
        await asyncio.sleep(delay_s)  # the payment gateway retries while the first is in flight
        return acc.top_up("pay-42", 3000, T0).duplicate

    results = await asyncio.gather(*(request(0.001 * (i % 3)) for i in range(20)))
    assert results.count(False) == 1
    assert acc.balance == Decimal(900)


def test_concurrent_threads_with_one_key_credit_once() -> None:
    acc = _account()
    barrier = threading.Barrier(8)

    def request(_: int) -> bool:
        barrier.wait()
        return acc.top_up("pay-43", 10000, T0).duplicate

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(request, range(8)))
    assert results.count(False) == 1
    assert acc.balance == Decimal(1175)


def test_adjustments_are_idempotent_and_signed() -> None:
    acc = _account()
    acc.top_up("k1", 500, T0)
    acc.adjust("fix-1", Decimal("-12.5"), T0, reason="meter test energy")
    acc.adjust("fix-1", Decimal("-12.5"), T0, reason="meter test energy")
    assert acc.balance == Decimal("487.5")
    with pytest.raises(PrepaidError, match="already used"):
        acc.adjust("fix-1", Decimal(5), T0, reason="other")
    with pytest.raises(PrepaidError, match="already used"):
        acc.top_up("fix-1", 500, T0)


# ---- consumption


def test_balance_is_credited_minus_consumed_from_the_cumulative_register() -> None:
    acc = _account()
    acc.top_up("k", 1000, T0)  # 650 units
    assert _read(acc, 0, 1_000_000) is ReadingStatus.BASELINE  # energy before the first reading is not ours
    assert acc.balance == Decimal(650)
    assert _read(acc, 15, 1_000_250) is ReadingStatus.COUNTED
    assert _read(acc, 30, 1_001_000) is ReadingStatus.COUNTED
    assert acc.energy_wh == 1000
    assert acc.balance == Decimal(649)


def test_repeated_and_out_of_order_readings_never_count_twice() -> None:
    acc = _account()
    acc.top_up("k", 1000, T0)
    _read(acc, 0, 5000)
    _read(acc, 30, 7000)
    assert _read(acc, 30, 7000) is ReadingStatus.DUPLICATE
    assert _read(acc, 15, 6000) is ReadingStatus.STALE  # late arrival of an older reading
    assert _read(acc, 0, 5000) is ReadingStatus.STALE
    assert _read(acc, 45, 7000) is ReadingStatus.COUNTED  # nothing used in the interval
    assert acc.energy_wh == 2000
    assert acc.balance == Decimal(648)
    assert acc.last_reading == RegisterReading(_at(45), 7000)
    with pytest.raises(PrepaidError, match=r"two readings captured at .* differ"):
        _read(acc, 45, 7100)


def test_rollover_counts_across_the_modulus() -> None:
    acc = _account(ReadingPolicy(rollover_wh=100_000_000))
    acc.top_up("k", 1000, T0)
    _read(acc, 0, 99_999_500)
    assert _read(acc, 15, 300) is ReadingStatus.ROLLOVER
    assert acc.energy_wh == 800
    assert acc.balance == Decimal("649.2")
    with pytest.raises(PrepaidError, match="beyond its modulus"):
        _read(acc, 30, 100_000_000)


def test_a_decrease_is_an_anomaly_not_a_credit_nor_a_charge() -> None:
    acc = _account(ReadingPolicy(confirm_reset_after=None))
    acc.top_up("k", 1000, T0)
    _read(acc, 0, 50_000)
    assert _read(acc, 15, 10) is ReadingStatus.DECREASE  # a glitch or a reset: not guessed
    assert acc.balance == Decimal(650)
    assert _read(acc, 30, 50_400) is ReadingStatus.COUNTED  # the glitch passed: baseline was kept
    assert acc.energy_wh == 400


def test_consistent_lower_readings_confirm_a_register_reset() -> None:
    acc = _account()  # confirm_reset_after=3
    acc.top_up("k", 1000, T0)
    _read(acc, 0, 50_000)
    assert _read(acc, 15, 100) is ReadingStatus.DECREASE
    assert _read(acc, 30, 300) is ReadingStatus.DECREASE
    assert acc.pending_anomalies == 2
    result = acc.apply_reading(RegisterReading(_at(45), 600))
    assert result.status is ReadingStatus.COUNTED
    rebase = [e for e in result.events if isinstance(e, RebaseEvent)]
    assert rebase[0].cause is RebaseCause.RESET_DETECTED
    assert rebase[0].at == _at(15)
    assert result.energy_wh == 500  # from the first low reading (100 Wh) to 600 Wh
    assert acc.balance == Decimal("649.5")
    assert _read(acc, 60, 700) is ReadingStatus.COUNTED
    assert acc.energy_wh == 600


def test_operator_recorded_reset_and_meter_replacement() -> None:
    acc = _account()
    acc.top_up("k", 1000, T0)
    _read(acc, 0, 20_000)
    _read(acc, 15, 20_500)
    # The old meter was read at removal (21 000 Wh); the new one starts at 35 Wh.
    event = acc.replace_meter(_at(20), 35, final_register_wh=21_000, reason="meter swap ticket 7")
    assert (event.energy_wh, event.charge) == (500, Decimal("0.5"))
    assert _read(acc, 30, 1035) is ReadingStatus.COUNTED
    assert acc.energy_wh == 2000
    acc.register_reset(_at(40), 0)
    assert _read(acc, 45, 100) is ReadingStatus.COUNTED
    assert acc.energy_wh == 2100
    with pytest.raises(PrepaidError, match="below the last counted"):
        acc.replace_meter(_at(50), 0, final_register_wh=10)
    with pytest.raises(PrepaidError, match="before the last counted"):
        acc.register_reset(_at(10), 0)


def test_an_implausible_jump_is_held_back() -> None:
    acc = _account(ReadingPolicy(max_power_w=10_000))
    acc.top_up("k", 1000, T0)
    _read(acc, 0, 1000)
    assert _read(acc, 15, 1000 + 2500) is ReadingStatus.COUNTED  # 10 kW for 15 min
    assert _read(acc, 30, 3500 + 900_000) is ReadingStatus.JUMP
    assert _read(acc, 45, 3500 + 1000) is ReadingStatus.COUNTED
    assert acc.energy_wh == 3500


# ---- reminders


def _descend(
    acc: PrepaidAccount, start_minute: int, register: int, units: list[int]
) -> tuple[int, int, list[Decimal]]:
    """Read one unit per step down through ``units`` balances; record reminders as the runner would."""
    sent: list[Decimal] = []
    minute = start_minute
    for _ in units:
        minute += 15
        register += 1000
        _read(acc, minute, register)
        due = acc.due_reminders(LEVELS)
        if due:
            sent.append(due[-1])
            for skipped in due[:-1]:
                acc.record_reminder(skipped, _at(minute), sent=False)
            acc.record_reminder(due[-1], _at(minute))
    return minute, register, sent


def test_each_level_reminds_exactly_once_per_descent() -> None:
    acc = _account()
    acc.top_up("k1", 3000, T0)  # 900 units
    _read(acc, 0, 0)
    minute, register, sent = _descend(acc, 0, 0, list(range(900)))
    assert acc.balance == 0
    assert sent == [Decimal(300), Decimal(200), Decimal(100)]
    # Another top-up lifts the balance above all levels: they are re-armed, once each again.
    acc.top_up("k2", 10000, _at(minute))  # 1175 units
    _, _, sent = _descend(acc, minute, register, list(range(1175)))
    assert sent == [Decimal(300), Decimal(200), Decimal(100)]


def test_a_top_up_that_stays_below_a_level_does_not_repeat_it() -> None:
    acc = _account()
    acc.top_up("k1", 500, T0)  # 500 units
    _read(acc, 0, 0)
    minute, register, sent = _descend(acc, 0, 0, list(range(260)))  # down to 240: 300 reminded
    assert sent == [Decimal(300)]
    acc.top_up("k2", 500, _at(minute))  # 740 units -> 300 re-armed
    assert acc.is_armed(Decimal(300))
    minute, register, sent = _descend(acc, minute, register, list(range(560)))  # down to 180
    assert sent == [Decimal(300), Decimal(200)]
    acc.adjust("small", Decimal(50), _at(minute), reason="goodwill")  # 230: below 300, above 200
    assert not acc.is_armed(Decimal(300))
    assert acc.is_armed(Decimal(200))
    assert acc.due_reminders(LEVELS) == []


def test_levels_crossed_in_one_step_are_due_together() -> None:
    acc = _account()
    acc.top_up("k1", 3000, T0)
    _read(acc, 0, 0)
    _read(acc, 15, 750_000)  # 900 -> 150 units in one reading (the meter was unreachable)
    assert acc.due_reminders(LEVELS) == [Decimal(300), Decimal(200)]


# ---- persistence


def test_records_round_trip_exactly() -> None:
    acc = _account(ReadingPolicy(rollover_wh=100_000_000))
    acc.top_up("k1", 3000, T0, reference="UPI 1")
    acc.adjust("a1", Decimal("-1.5"), T0, reason="correction")
    _read(acc, 0, 99_999_000)
    _read(acc, 15, 500)
    _read(acc, 30, 200)  # decrease anomaly
    acc.record_reminder(Decimal(300), _at(30), sent=False)
    acc.record_disconnect(_at(30), "empty")
    acc.record_reconnect(_at(45), "topped up")
    acc.replace_meter(_at(50), 7, reason="swap")
    records = acc.to_records()
    assert all(set(r) == set(RECORD_FIELDS) for r in records)
    text = json.dumps(records)  # plain JSON scalars, storable anywhere
    rebuilt = PrepaidAccount.from_records(list(reversed(json.loads(text))), TABLE, policy=acc.policy)
    assert rebuilt.events == acc.events
    assert rebuilt.balance == acc.balance
    assert rebuilt.account_id == "acc-1"
    assert rebuilt.meter_id == "meter-1"
    assert rebuilt.disconnected_by_prepaid is False
    assert rebuilt.pending_anomalies == acc.pending_anomalies
    assert acc.to_records(since_seq=len(records) - 1) == records[-1:]
    # The rebuilt account keeps working, and keeps its idempotency keys.
    assert rebuilt.top_up("k1", 3000, T0).duplicate
    assert _read(rebuilt, 60, 1007) is ReadingStatus.COUNTED


def test_broken_or_mixed_records_are_refused() -> None:
    acc = _account()
    acc.top_up("k1", 500, T0)
    acc.top_up("k2", 500, T0)
    records = acc.to_records()
    with pytest.raises(PrepaidError, match="sequence broken"):
        PrepaidAccount.from_records(records[1:], TABLE)
    other = PrepaidAccount("acc-2", "meter-2", TABLE)
    other.top_up("k", 500, T0)
    with pytest.raises(PrepaidError, match="several accounts"):
        PrepaidAccount.from_records(records + other.to_records(), TABLE)
    bad = dict(records[0], credit="lots")
    with pytest.raises(PrepaidError, match="not a decimal"):
        PrepaidAccount.from_records([bad], TABLE)
    empty = PrepaidAccount.from_records([], TABLE, account_id="acc-9", meter_id="m-9")
    assert empty.balance == 0


def test_the_store_keeps_every_record_field_of_the_ledger() -> None:
    from metercom.service.store.automation import LEDGER_COLUMNS

    assert set(LEDGER_COLUMNS) == set(RECORD_FIELDS)
