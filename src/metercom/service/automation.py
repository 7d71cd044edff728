"""Automation in the head-end: rules and relay actions, broken-neutral detection, prepaid, alarms.

Rule: the domain libraries (:mod:`.rules`, :mod:`.prepaid`, :mod:`.notify`) decide; this module
only feeds them what the collector read and carries out what they decide through the head-end's
recorded, audited, confirmed commands (:class:`~metercom.service.commands.CommandExecutor`):
a rule's relay action is a ``disconnect``/``reconnect`` command requested by ``rule:<name>``,
prepaid's by ``prepaid``, a top-up is a ``top_up`` command. Nothing here talks to a meter or
reads a clock of its own.

Theory of operation, per successful read of a plan (:meth:`Automation.on_collected`, the
collector's hook, serialised per meter so samples are handled in the order they were read):

1. **Quantities.** The readings are mapped onto the rule language's names (:func:`quantities`,
   table below) at the sample time: the meter's own capture time of its instantaneous values,
   else the head-end's time at the end of the conversation. Totals a meter does not report are
   derived from its phases (``TU`` mean, ``TI``/``Tp``/``Tq``/``Ts`` sums, ``Te`` sum of the
   phase registers, ``Tpf`` = ``Tp / Ts``).

   ============================== ========== ===============================
   OBIS (A=1, E=0)                quantity   unit
   ============================== ========== ===============================
   32.7.0 / 52.7.0 / 72.7.0       L1U..L3U   V (kV converted)
   31.7.0 / 51.7.0 / 71.7.0       L1I..L3I   A (mA converted)
   21.7.0 / 41.7.0 / 61.7.0       L1p..L3p   W (kW converted); 1.7.0 -> Tp
   23.7.0 / 43.7.0 / 63.7.0       L1q..L3q   var; 3.7.0 -> Tq
   29.7.0 / 49.7.0 / 69.7.0       L1s..L3s   VA; 9.7.0 -> Ts
   14.7.0                         Tf         Hz (and Lnf when the reading names phase n)
   33.7.0 / 53.7.0 / 73.7.0       L1pf..L3pf 13.7.0 -> Tpf
   12.7.0 / 11.7.0                L1U / L1I  any phase (a single-phase meter's), when the
                                             meter gives no 32.7.0 / 31.7.0
   21.8.0 / 41.8.0 / 61.8.0       L1e..L3e   kWh (Wh converted); 1.8.0 -> Te
   ============================== ========== ===============================

2. **Rules.** The :class:`~metercom.model.rules.RuleEngine` (one per head-end, configured from
   the ``[[rules]]`` with ``evaluate = "head-end"`` per meter, slot order) evaluates the sample;
   every transition is carried out by the :class:`~metercom.service.rules.RuleRunner` through
   :class:`CommandActuator` (targets ``relay1``/``supply``: the meter's supply relay, connect
   and disconnect; ``relay2``..: auxiliary outputs, high and low), dry runs only recorded.
   Each transition is audited (``rule.triggered``/``rule.recovered``) and raises (or clears) a
   ``rule`` alarm. Rules with ``evaluate = "meter"`` are pushed instead: after a successful read
   of a meter whose pushed rules differ from the configuration (at start, after a change, after
   a failed push; failed pushes are retried at most every :data:`PUSH_RETRY`), a ``push_rules``
   command (recorded, audited) writes the slot images that differ and clears slots of deleted
   rules; the meter then samples, decides and switches itself, and its event log's rule
   entries become ``rule`` alarms.
3. **Broken neutral.** Meters that report three phase voltages feed a
   :class:`~metercom.service.rules.BrokenNeutralDetector` with the meter's ``[[neutral]]``
   settings (or the defaults); a detection raises a ``broken_neutral`` alarm, the clearing
   clears it.
4. **Meter events.** Event-log entries newer than the log's marker before the read (and than
   the newest entry an earlier read already turned into an alarm) become alarms
   (:data:`DLMS_EVENT_ALARMS`, :data:`MODBUS_EVENT_ALARMS`) with the meter's event time;
   a power restoration clears the power failure.
5. **Prepaid.** A meter with an account runs :meth:`~metercom.service.prepaid.PrepaidRunner.run_cycle`
   with its energy register reading (the account's ``register``, default 1.8.0) and the relay
   state when the plan read the disconnect control (0-0:96.3.10.255). New ledger rows are
   stored at once (:class:`~metercom.service.store.automation.AutomationStore`); accounts are
   rebuilt from them at start. A disconnect held by a protected window is re-checked exactly
   when the window ends. :meth:`Automation.top_up_handler` runs ``top_up`` commands: credit
   (idempotent by key), store, then a prepaid cycle, so the supply is back at once.

Alarms: the :class:`~metercom.service.notify.AlarmCenter` built from ``[notify]`` is the
collector's availability listener (comm loss once when a meter goes unavailable, cleared once
when it answers again; an authentication failure also raises ``auth_failure``). Every episode
that changes is written to the store's ``alarms`` table by a background flusher; active
episodes are restored into the centre at start, so an acknowledgement survives a restart.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any, Final
from zoneinfo import ZoneInfo

from metercom.clock import Clock, current_clock
from metercom.errors import AuthenticationError, InputError, MetercomError, RuleError, StoreError
from metercom.model.obis import Obis
from metercom.model.reading import Reading
from metercom.model.rules import Command, Rule, RuleEngine, RuleState
from metercom.model.rules.slots import encode_slot, relay_outputs
from metercom.service.collector import AvailabilityListener
from metercom.service.commands import CommandExecutor, CommandFailed, CommandKind
from metercom.service.config_automation import meter_outputs, rule_slot_spec
from metercom.service.config_model import FleetConfig, MeterConfig, NotifyConfig, PrepaidConfig, RuleConfig
from metercom.service.config_model import Protocol as MeterProtocol
from metercom.service.meters import CollectedData, NotSupportedError, same_quantity
from metercom.service.notify import (
    Alarm,
    AlarmCenter,
    AlarmKind,
    AlarmRecord,
    AlarmState,
    Channel,
    DeliveryRecord,
    DeliveryStatus,
    JsonScalar,
    NotificationEvent,
    PrepaidAlarms,
    Route,
    Severity,
    SmtpChannel,
    SmtpTls,
    WebhookChannel,
)
from metercom.service.prepaid import (
    BetweenRows,
    DailyWindow,
    MonthlyStatement,
    PrepaidAccount,
    PrepaidController,
    PrepaidPolicy,
    PrepaidRunner,
    PrepaidTariff,
    ProtectedWindows,
    RegisterReading,
    RelayState,
    TouWindow,
    monthly_statement,
)
from metercom.service.rules import (
    BrokenNeutralDetector,
    NeutralConfig,
    NeutralEventKind,
    RuleAction,
    RuleRunner,
)
from metercom.service.secrets import Secret, SecretRef
from metercom.service.store import CommandRecord, CommandState, MeterEvent, Store
from metercom.service.store.automation import AutomationStore, dumps

__all__ = [
    "DLMS_EVENT_ALARMS",
    "MODBUS_EVENT_ALARMS",
    "PUSH_RETRY",
    "SUPPLY_TARGETS",
    "Automation",
    "CommandActuator",
    "CommandRelay",
    "quantities",
    "rule_images",
]

log = logging.getLogger(__name__)

#: Rule targets that name the meter's supply relay (DLMS disconnect control, a Modbus load relay).
SUPPLY_TARGETS: Final = frozenset({"relay1", "supply"})
#: Shortest time between two attempts to push a meter's rules after a failed push.
PUSH_RETRY: Final = timedelta(minutes=1)
#: DLMS event codes (IS 15959 numbering, as the simulator's event logs) -> (kind, raise?, text).
DLMS_EVENT_ALARMS: Final[Mapping[int, tuple[AlarmKind, bool, str]]] = {
    101: (AlarmKind.POWER_FAILURE, True, "power failure"),
    102: (AlarmKind.POWER_FAILURE, False, "power restored"),
    201: (AlarmKind.TAMPER, True, "tamper: magnetic influence"),
    203: (AlarmKind.TAMPER, True, "tamper: neutral disturbance"),
    251: (AlarmKind.COVER_OPEN, True, "meter cover opened"),
}
#: Modbus event-log entries by the profile's event name -> (kind, raise?, text).
MODBUS_EVENT_ALARMS: Final[Mapping[str, tuple[AlarmKind, bool, str]]] = {
    "power_on": (AlarmKind.POWER_FAILURE, True, "meter powered up after a supply interruption"),
    "tamper": (AlarmKind.TAMPER, True, "tamper"),
    "cover_open": (AlarmKind.COVER_OPEN, True, "meter cover opened"),
    "rule_triggered": (AlarmKind.RULE, True, "a rule the meter evaluates triggered"),
    "rule_recovered": (AlarmKind.RULE, False, "the meter's rule recovered"),
    "rule_dry_run_triggered": (AlarmKind.RULE, True, "dry run: a rule the meter evaluates would trigger"),
    "rule_dry_run_recovered": (AlarmKind.RULE, False, "dry run: the meter's rule would recover"),
}

_current_rule: contextvars.ContextVar[str] = contextvars.ContextVar("metercom_rule", default="?")
_DISCONNECT_CONTROL: Final = Obis(0, 0, 96, 3, 10, 255)
_SCALE: Final[Mapping[str, Decimal]] = {
    "v": Decimal(1),
    "kv": Decimal(1000),
    "a": Decimal(1),
    "ma": Decimal("0.001"),
    "w": Decimal(1),
    "kw": Decimal(1000),
    "var": Decimal(1),
    "kvar": Decimal(1000),
    "va": Decimal(1),
    "kva": Decimal(1000),
    "hz": Decimal(1),
    "wh": Decimal("0.001"),
    "kwh": Decimal(1),
    "mwh": Decimal(1000),
}
# OBIS C (D = 7 instantaneous, 8 energy) -> quantity suffix and phase (0: total)
_INSTANT: Final[Mapping[int, tuple[str, int]]] = {
    32: ("U", 1), 52: ("U", 2), 72: ("U", 3),
    31: ("I", 1), 51: ("I", 2), 71: ("I", 3),
    1: ("p", 0), 21: ("p", 1), 41: ("p", 2), 61: ("p", 3),
    3: ("q", 0), 23: ("q", 1), 43: ("q", 2), 63: ("q", 3),
    9: ("s", 0), 29: ("s", 1), 49: ("s", 2), 69: ("s", 3),
    14: ("f", 0),
    13: ("pf", 0), 33: ("pf", 1), 53: ("pf", 2), 73: ("pf", 3),
}  # fmt: skip
_ENERGY: Final[Mapping[int, int]] = {1: 0, 21: 1, 41: 2, 61: 3}
# OBIS C (D = 7) of "any phase" (a single-phase meter's values: PZEM-004T, IS 15959) -> the
# quantity it stands for when the meter gives no per-phase code
_ANY_PHASE: Final[Mapping[int, str]] = {12: "L1U", 11: "L1I"}


def _number(reading: Reading) -> Decimal | None:
    value = reading.value
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        return None
    number = Decimal(value)
    if not number.is_finite():
        return None
    unit = (reading.unit or "").strip().lower()
    scale = _SCALE.get(unit, Decimal(1))
    return number * scale


def _phase_of(reading: Reading) -> int | None:
    """The phase a reading's own address names (``l2.frequency``), if any."""
    head = reading.address.split(".", 1)[0].lower()
    if len(head) == 2 and head[0] == "l" and head[1] in "123":
        return int(head[1])
    return None


def quantities(readings: Sequence[Reading]) -> dict[str, Decimal]:
    """The rule quantities the readings give (see the module docstring's table)."""
    out: dict[str, Decimal] = {}
    any_phase: dict[str, Decimal] = {}
    for reading in readings:
        obis = reading.obis
        if obis is None or obis.a != 1 or obis.e != 0 or obis.f not in (255, 0):
            continue
        number = _number(reading)
        if number is None:
            continue
        if obis.d == 7 and obis.c in _ANY_PHASE:
            any_phase[_ANY_PHASE[obis.c]] = number
        elif obis.d == 7 and obis.c in _INSTANT:
            suffix, phase = _INSTANT[obis.c]
            if suffix == "f":
                out["Tf"] = number
                own = _phase_of(reading)
                if own is not None:
                    out[f"L{own}f"] = number
                continue
            out[f"L{phase}{suffix}" if phase else f"T{suffix}"] = number
        elif obis.d == 8 and obis.c in _ENERGY:
            phase = _ENERGY[obis.c]
            out[f"L{phase}e" if phase else "Te"] = number
    for name, number in any_phase.items():
        out.setdefault(name, number)
    for suffix in ("U", "I", "p", "q", "s", "e"):
        phases = [out[f"L{n}{suffix}"] for n in (1, 2, 3) if f"L{n}{suffix}" in out]
        if phases and f"T{suffix}" not in out:
            out[f"T{suffix}"] = (
                sum(phases, Decimal(0)) / len(phases) if suffix == "U" else sum(phases, Decimal(0))
            )
    if "Tpf" not in out and "Tp" in out and out.get("Ts"):
        out["Tpf"] = out["Tp"] / out["Ts"]
    return out


def _sample_time(readings: Sequence[Reading], fallback: datetime) -> datetime:
    stamps = [
        r.captured_at
        for r in readings
        if r.captured_at is not None and r.obis is not None and r.obis.d in (7, 8)
    ]
    return max(stamps) if stamps else fallback


def _register_wh(reading: Reading) -> int | None:
    value = reading.value
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        return None
    unit = (reading.unit or "wh").strip().lower()
    factor = {"wh": Decimal(1), "kwh": Decimal(1000), "mwh": Decimal(1_000_000)}.get(unit)
    if factor is None:
        return None
    try:
        return int((Decimal(value) * factor).to_integral_value(ROUND_FLOOR))
    except InvalidOperation:
        return None


def _relay_state(readings: Sequence[Reading]) -> RelayState:
    for reading in readings:
        if (
            reading.obis is not None
            and same_quantity(reading.obis, _DISCONNECT_CONTROL)
            and reading.obis.a == 0
            and isinstance(reading.value, bool)
        ):
            return RelayState.CONNECTED if reading.value else RelayState.DISCONNECTED
        if (
            reading.obis is None
            and reading.address == "relay_state"
            and isinstance(reading.value, Decimal | int)
        ):
            return RelayState.CONNECTED if int(reading.value) & 1 else RelayState.DISCONNECTED
    return RelayState.UNKNOWN


# -- acting through the command executor -----------------------------------------------------------


async def _switch(executor: CommandExecutor, kind: CommandKind, meter_id: str, reason: str, by: str) -> None:
    record = await executor.command(kind, meter_id, {"reason": reason[:500]}, requested_by=by)
    if record.state is not CommandState.SUCCEEDED:
        raise CommandFailed(f"{kind.value} of meter {meter_id} (command {record.id}) failed: {record.error}")


class CommandActuator:
    """The rules engine's :class:`~metercom.service.rules.Actuator` on the command executor.

    Targets :data:`SUPPLY_TARGETS` with CONNECT/DISCONNECT become ``reconnect``/``disconnect``
    commands (a DLMS meter's disconnect control, a Modbus meter's load relay); ``relay2`` ..
    with HIGH/LOW become ``set_output`` commands (a relay meter's auxiliary outputs). All are
    requested by ``rule:<name>``: recorded before they run, at most once, read back, audited.
    Anything else raises :class:`~metercom.service.meters.NotSupportedError` (the configuration
    refuses such rules).
    """

    def __init__(self, executor: CommandExecutor) -> None:
        self.executor = executor

    async def apply(self, meter_id: str, target: str, command: Command) -> None:
        rule = _current_rule.get()
        supply = command in (Command.CONNECT, Command.DISCONNECT)
        if target in SUPPLY_TARGETS and supply:
            kind = CommandKind.DISCONNECT if command is Command.DISCONNECT else CommandKind.RECONNECT
            await _switch(self.executor, kind, meter_id, f"rule {rule}", f"rule:{rule}")
            return
        output = _aux_output(target)
        if output is None or supply:
            raise NotSupportedError(
                f"target {target!r} with {command.value}: the supply (relay1) takes connect/disconnect, "
                "auxiliary outputs (relay2, relay3 ...) take high/low"
            )
        level = "high" if command is Command.HIGH else "low"
        record = await self.executor.command(
            CommandKind.SET_OUTPUT,
            meter_id,
            {"output": output, "level": level, "reason": f"rule {rule}"},
            requested_by=f"rule:{rule}",
        )
        if record.state is not CommandState.SUCCEEDED:
            raise CommandFailed(
                f"set_output {target}={level} of meter {meter_id} (command {record.id}) failed: "
                f"{record.error}"
            )


def _aux_output(target: str) -> int | None:
    """The output number of an auxiliary target ``relay2`` .. ``relay16``, else None."""
    if target.startswith("relay") and target[5:].isdigit() and not target[5:].startswith("0"):
        number = int(target[5:])
        return number if 2 <= number <= 16 else None
    return None


def _rule(config: RuleConfig) -> Rule:
    """The engine's rule for a ``[[rules]]`` entry."""
    return Rule.from_text(
        config.name,
        config.expression,
        window=config.window,
        recovery=config.recovery,
        action=Command(config.action),
        targets=config.targets,
        dry_run=config.dry_run,
        enabled=config.enabled,
    )


def rule_images(meter: MeterConfig, rules: Sequence[RuleConfig]) -> list[tuple[str, bytes]]:
    """The (rule name, slot image) of every rule slot of ``meter`` for its meter-evaluated rules.

    Rules with an explicit ``slot`` take it; the others fill the free slots in order; unused
    slots are ``("", b"")`` (pushed as empty: rules deleted from the configuration are cleared).
    """
    spec = rule_slot_spec(meter)
    if spec is None:
        return []
    outputs = relay_outputs(meter_outputs(meter)) | {"supply": 1}
    slots: list[tuple[str, bytes]] = [("", b"")] * spec.slots.count
    mine = [r for r in rules if r.evaluate == "meter"]
    taken = {r.slot - 1 for r in mine if r.slot is not None}
    free = iter(i for i in range(spec.slots.count) if i not in taken)
    for r in mine:
        index = r.slot - 1 if r.slot is not None else next(free, None)
        if index is None or index >= spec.slots.count:
            raise RuleError(f"meter {meter.id}: no free rule slot for rule {r.name!r}")
        slots[index] = (r.name, encode_slot(_rule(r), outputs))
    return slots


class CommandRelay:
    """Prepaid's :class:`~metercom.service.prepaid.RelayCommander` on the command executor."""

    def __init__(self, executor: CommandExecutor, requested_by: str = "prepaid") -> None:
        self.executor = executor
        self.requested_by = requested_by

    async def disconnect(self, meter_id: str, reason: str) -> None:
        await _switch(self.executor, CommandKind.DISCONNECT, meter_id, reason, self.requested_by)

    async def reconnect(self, meter_id: str, reason: str) -> None:
        await _switch(self.executor, CommandKind.RECONNECT, meter_id, reason, self.requested_by)


# -- alarms to and from rows -------------------------------------------------------------------------


def _alarm_json(alarm: Alarm) -> dict[str, Any]:
    return {
        "kind": alarm.kind.value,
        "meter_id": alarm.meter_id,
        "at": alarm.at.isoformat(),
        "severity": alarm.severity.label,
        "message": alarm.message,
        "details": dict(alarm.details),
        "dedup_key": alarm.dedup_key,
    }


def _alarm_of(data: Mapping[str, Any]) -> Alarm:
    return Alarm(
        AlarmKind(data["kind"]),
        data["meter_id"],
        datetime.fromisoformat(data["at"]),
        Severity.parse(data["severity"]),
        data["message"],
        data["details"],
        data["dedup_key"],
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _row_of(record: AlarmRecord) -> dict[str, Any]:
    deliveries = [
        {
            "delivery_id": d.delivery_id,
            "channel": d.channel,
            "notification_id": d.notification_id,
            "event": d.event.value,
            "created_at": _iso(d.created_at),
            "status": d.status.value,
            "attempts": d.attempts,
            "last_error": d.last_error,
            "delivered_at": _iso(d.delivered_at),
        }
        for d in record.deliveries
    ]
    return {
        "alarm_id": record.alarm_id,
        "dedup_key": record.dedup_key,
        "kind": record.kind.value,
        "meter_id": record.meter_id,
        "severity": record.severity.label,
        "state": record.state.value,
        "first_at": record.first_at,
        "last_at": record.last_at,
        "count": record.count,
        "message": record.last.message,
        "first_alarm": dumps(_alarm_json(record.first)),
        "last_alarm": dumps(_alarm_json(record.last)),
        "acknowledged_by": record.acknowledged_by,
        "acknowledged_at": record.acknowledged_at,
        "acknowledge_note": record.acknowledge_note,
        "cleared_at": record.cleared_at,
        "clear_reason": record.clear_reason,
        "notifications": record.notifications,
        "last_notified_at": record.last_notified_at,
        "deliveries": dumps(deliveries),
    }


def _record_of(row: Mapping[str, Any]) -> AlarmRecord:
    def when(value: str | None) -> datetime | None:
        return datetime.fromisoformat(value) if value else None

    record = AlarmRecord(
        row["alarm_id"],
        _alarm_of(json.loads(row["first_alarm"])),
        _alarm_of(json.loads(row["last_alarm"])),
        count=row["count"],
        acknowledged_by=row["acknowledged_by"],
        acknowledged_at=row["acknowledged_at"],
        acknowledge_note=row["acknowledge_note"] or "",
        cleared_at=row["cleared_at"],
        clear_reason=row["clear_reason"] or "",
        notifications=row["notifications"],
        last_notified_at=row["last_notified_at"],
    )
    for d in json.loads(row["deliveries"]):
        created = when(d["created_at"])
        record.deliveries.append(
            DeliveryRecord(
                d["delivery_id"],
                d["channel"],
                d["notification_id"],
                record.alarm_id,
                NotificationEvent(d["event"]),
                created if created is not None else record.first_at,
                DeliveryStatus(d["status"]),
                d["attempts"],
                d["last_error"],
                when(d["delivered_at"]),
            )
        )
    return record


def _channels(config: NotifyConfig, fleet: FleetConfig, env: Mapping[str, str] | None) -> dict[str, Channel]:
    def secret(ref: SecretRef) -> SecretRef | Secret:
        # With an explicit environment resolve now; else at each send (a rotated secret is picked up).
        return fleet.resolve_secret(ref, env=env) if env is not None else ref

    out: dict[str, Channel] = {}
    for ch in config.channels:
        if ch.kind == "smtp":
            out[ch.id] = SmtpChannel(
                ch.host,
                ch.port,
                sender=ch.sender,
                recipients=ch.recipients,
                tls=SmtpTls(ch.tls),
                username=ch.username,
                password=secret(ch.password) if ch.password is not None else None,
                ca_file=ch.ca_file,
                verify=ch.verify,
                timeout_s=ch.timeout_s,
                allow_plain_auth=ch.allow_plain_auth,
            )
        elif ch.secret is not None:
            out[ch.id] = WebhookChannel(
                ch.url, secret=secret(ch.secret), timeout_s=ch.timeout_s, ca_file=ch.ca_file, verify=ch.verify
            )
    return out


def _routes(config: NotifyConfig) -> list[Route]:
    return [
        Route(
            r.channels,
            kinds=frozenset(AlarmKind(k) for k in r.kinds) if r.kinds is not None else None,
            min_severity=Severity.parse(r.min_severity),
            meters=frozenset(r.meters) if r.meters is not None else None,
            events=frozenset(NotificationEvent(e) for e in r.events)
            if r.events is not None
            else frozenset(NotificationEvent),
        )
        for r in config.routes
    ]


# -- prepaid from the configuration ------------------------------------------------------------------


def prepaid_tariff(config: PrepaidConfig) -> PrepaidTariff:
    """The tariff of a ``[prepaid]`` table."""
    zone = ZoneInfo(config.timezone)
    if config.table:
        return PrepaidTariff.from_table(
            {Decimal(k): Decimal(v) for k, v in config.table.items()},
            currency=config.currency,
            minor_digits=config.minor_digits,
            between_rows=BetweenRows(config.between_rows),
            unit_wh=config.unit_wh,
        )
    return PrepaidTariff.per_kwh(
        Decimal(config.price_minor_per_kwh or "0"),
        currency=config.currency,
        minor_digits=config.minor_digits,
        tou=[
            TouWindow(w.start, w.end, Decimal(w.price_minor_per_kwh or "0"), w.weekdays, w.name)
            for w in config.tou
        ],
        zone=zone,
    )


def prepaid_policy(config: PrepaidConfig) -> PrepaidPolicy:
    """The reminder levels, protected windows and disconnect rules of a ``[prepaid]`` table."""
    zone = ZoneInfo(config.timezone)
    windows = ProtectedWindows(
        zone,
        daily=tuple(DailyWindow(w.start, w.end, w.weekdays, w.name) for w in config.protected),
        weekdays=config.protected_weekdays,
        holidays=dict(config.holidays),
    )
    return PrepaidPolicy(
        levels=tuple(Decimal(v) for v in config.levels),
        windows=windows,
        disconnect_at=Decimal(config.disconnect_at),
        max_reading_age=config.max_reading_age,
    )


@dataclass(slots=True)
class _Prepaid:
    config: PrepaidConfig
    tariff: PrepaidTariff
    runner: PrepaidRunner
    zone: ZoneInfo


class Automation:
    """Rules, broken-neutral detection, prepaid and alarms of one head-end; see the module docstring.

    It is the collector's :class:`~metercom.service.collector.AvailabilityListener` (passing
    each change on to ``listener`` too) and its ``on_collected`` hook, and the command
    executor's ``top_up_handler``.
    """

    def __init__(
        self,
        store: Store,
        commands: CommandExecutor,
        *,
        clock: Clock | None = None,
        env: Mapping[str, str] | None = None,
        listener: AvailabilityListener | None = None,
    ) -> None:
        self.store = store
        self.tables = AutomationStore(store)
        self.commands = commands
        self.env = env
        self.listener = listener
        self._clock = clock
        self.engine = RuleEngine()
        self.rules = RuleRunner(self.engine, CommandActuator(commands), clock=clock)
        self.neutral: dict[str, BrokenNeutralDetector] = {}
        #: The detector settings per meter from ``[[neutral]]`` (None: the detector is off).
        self._neutral_configs: dict[str, NeutralConfig | None] = {}
        #: Rule slot images wanted on meters that evaluate rules themselves, and those confirmed.
        self._rule_slots: dict[str, list[tuple[str, bytes]]] = {}
        self._pushed: dict[str, list[tuple[str, bytes]]] = {}
        self._push_tasks: dict[str, asyncio.Task[None]] = {}
        self._push_failed_at: dict[str, datetime] = {}
        self.center = AlarmCenter({}, [], clock=clock)
        self.accounts: dict[str, PrepaidAccount] = {}
        self._meter_accounts: dict[str, str] = {}
        self._registers: dict[str, Obis] = {}
        self._persisted: dict[str, int] = {}
        self._prepaid: _Prepaid | None = None
        self._notify: NotifyConfig | None = None
        self._notify_set = False
        self._config: FleetConfig | None = None
        self._locks: dict[str, asyncio.Lock] = {}
        self._rechecks: dict[str, asyncio.Task[None]] = {}
        self._event_marks: dict[tuple[str, str], datetime] = {}
        self._dirty: dict[str, AlarmRecord] = {}
        self._wake = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None
        self._started = False

    @property
    def clock(self) -> Clock:
        return self._clock or current_clock()

    def _lock(self, meter_id: str) -> asyncio.Lock:
        return self._locks.setdefault(meter_id, asyncio.Lock())

    # -- lifecycle -----------------------------------------------------------------------------------

    async def start(self, config: FleetConfig) -> None:
        """Restore active alarms, start delivery and the alarm flusher, then :meth:`configure`."""
        self._started = True
        self._install_center(self.center)
        for row in await self.tables.alarm_rows(active=True, limit=100_000):
            try:
                self.center.restore(_record_of(row))
            except (MetercomError, ValueError, KeyError) as exc:
                log.error("alarm %s could not be restored: %s", row.get("alarm_id"), exc)
        self._flusher = asyncio.create_task(self._flush_loop(), name="alarm flusher")
        await self.configure(config)
        await self.center.start()

    async def stop(self) -> None:
        """Cancel re-checks, write what changed, stop delivery (a short drain)."""
        for task in self._rechecks.values():
            task.cancel()
        self._rechecks.clear()
        for push in self._push_tasks.values():
            push.cancel()
        if self._push_tasks:
            await asyncio.wait(list(self._push_tasks.values()))
        self._push_tasks.clear()
        await self.flush()
        await self.center.aclose(drain_s=2.0)
        await self.flush()
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.wait([self._flusher])
            self._flusher = None

    async def configure(self, config: FleetConfig) -> None:
        """Take a configuration: rules per meter, prepaid accounts, notification channels."""
        self._config = config
        self._configure_rules(config)
        if not self._notify_set or config.notify != self._notify:
            await self._configure_notify(config)
        await self._configure_prepaid(config)

    def _configure_rules(self, config: FleetConfig) -> None:
        known = {m.id for m in config.meters}
        for meter in config.meters:
            self._configure_neutral(config, meter.id)
            try:
                images = rule_images(meter, config.rules_of(meter.id))
            except RuleError as exc:  # validated with the configuration; kept for safety
                log.error("meter %s: rules for the meter not prepared: %s", meter.id, exc)
                images = []
            if any(image for _, image in images) or meter.id in self._rule_slots:
                self._rule_slots[meter.id] = images
            try:
                rules = [_rule(r) for r in config.rules_of(meter.id) if r.evaluate != "meter"]
                if rules:
                    self.engine.configure(meter.id, rules)
                else:
                    self.engine.remove(meter.id)
            except RuleError as exc:  # validated with the configuration; kept for safety
                log.error("meter %s: rules not configured: %s", meter.id, exc)
        for meter_id in list(self.neutral):
            if meter_id not in known:
                del self.neutral[meter_id]
        for table in (self._rule_slots, self._pushed, self._push_failed_at, self._neutral_configs):
            for meter_id in [m for m in table if m not in known]:
                del table[meter_id]

    def _configure_neutral(self, config: FleetConfig, meter_id: str) -> None:
        entry = config.neutral_of(meter_id)
        wanted: NeutralConfig | None = NeutralConfig()
        if entry is not None:
            wanted = NeutralConfig(**entry.settings) if entry.enabled else None  # type: ignore[arg-type]
        if meter_id in self._neutral_configs and self._neutral_configs[meter_id] == wanted:
            return
        self._neutral_configs[meter_id] = wanted
        self.neutral.pop(meter_id, None)  # new settings: the detector starts afresh

    # -- rules the meters evaluate themselves ----------------------------------------------------------

    def _maybe_push(self, meter_id: str) -> None:
        """Start pushing a meter's rule slots if they differ from what it was last confirmed to hold."""
        wanted = self._rule_slots.get(meter_id)
        if wanted is None or self._pushed.get(meter_id) == wanted:
            return
        running = self._push_tasks.get(meter_id)
        if running is not None and not running.done():
            return
        failed = self._push_failed_at.get(meter_id)
        if failed is not None and self.clock.now() - failed < PUSH_RETRY:
            return
        self._push_tasks[meter_id] = asyncio.create_task(
            self._push(meter_id, wanted), name=f"push rules {meter_id}"
        )

    async def _push(self, meter_id: str, wanted: list[tuple[str, bytes]]) -> None:
        try:
            record = await self.push_rules(meter_id, wanted)
        except MetercomError as exc:
            log.error("meter %s: rules not pushed: %s", meter_id, exc)
            self._push_failed_at[meter_id] = self.clock.now()
            return
        if record.state is not CommandState.SUCCEEDED:
            log.warning("meter %s: pushing rules failed (command %s): %s", meter_id, record.id, record.error)
            self._push_failed_at[meter_id] = self.clock.now()
            return
        self._push_failed_at.pop(meter_id, None)
        self._pushed[meter_id] = wanted
        if not any(image for _, image in wanted) and self._rule_slots.get(meter_id) == wanted:
            # Every slot is empty and confirmed: the head-end no longer manages this meter's slots.
            self._rule_slots.pop(meter_id, None)
            self._pushed.pop(meter_id, None)

    async def push_rules(self, meter_id: str, wanted: list[tuple[str, bytes]] | None = None) -> CommandRecord:
        """Push a meter's rule slots now: a ``push_rules`` command (compare, write what differs)."""
        slots = wanted if wanted is not None else self._rule_slots.get(meter_id)
        if slots is None:
            raise InputError(f"meter {meter_id!r} has no rules it evaluates itself")
        args = {
            "slots": [
                {"slot": i, "rule": name, "image": image.hex()}
                for i, (name, image) in enumerate(slots, start=1)
            ],
            "reason": "configuration",
        }
        return await self.commands.command(CommandKind.PUSH_RULES, meter_id, args, requested_by="rules")

    async def wait_pushes(self) -> None:
        """Wait until no push of rule slots is running (for tests and tools)."""
        while running := [t for t in self._push_tasks.values() if not t.done()]:
            await asyncio.wait(running)

    def pushed_rules(self, meter_id: str) -> tuple[str, ...] | None:
        """The rule names (slot order, "" for empty) a meter was last confirmed to hold, if known."""
        pushed = self._pushed.get(meter_id)
        return None if pushed is None else tuple(name for name, _ in pushed)

    def _install_center(self, center: AlarmCenter) -> None:
        center.on_change = self._alarm_changed
        self.center = center

    async def _configure_notify(self, config: FleetConfig) -> None:
        notify = config.notify or NotifyConfig()
        center = AlarmCenter(
            _channels(notify, config, self.env),
            _routes(notify),
            quiet_period=notify.quiet_period,
            clock=self._clock,
        )
        old = self.center
        for record in old.alarms():
            center.restore(record)
        self._notify = config.notify
        self._notify_set = True
        self._install_center(center)
        old.on_change = None
        if self._started and old is not center:
            await old.aclose(drain_s=1.0)
            await center.start()

    async def _configure_prepaid(self, config: FleetConfig) -> None:
        prepaid = config.prepaid
        if prepaid is None:
            self._prepaid = None
            self.accounts.clear()
            self._meter_accounts.clear()
            self.commands.top_up_handler = None
            return
        tariff = prepaid_tariff(prepaid)
        runner = PrepaidRunner(
            PrepaidController(prepaid_policy(prepaid)),
            CommandRelay(self.commands),
            PrepaidAlarms(self.center),
            clock=self._clock,
        )
        self._prepaid = _Prepaid(prepaid, tariff, runner, ZoneInfo(prepaid.timezone))
        wanted = {a.account: a for a in prepaid.accounts}
        for account_id in list(self.accounts):
            if account_id not in wanted or self.accounts[account_id].meter_id != wanted[account_id].meter:
                del self.accounts[account_id]
        for account_id, spec in wanted.items():
            current = self.accounts.get(account_id)
            if current is not None:
                if current.tariff != tariff:  # a new tariff applies to what happens from now on
                    self.accounts[account_id] = PrepaidAccount(
                        account_id, spec.meter, tariff, events=current.events
                    )
                continue
            try:
                rows = await self.tables.ledger(account_id)
                account = PrepaidAccount.from_records(
                    rows, tariff, account_id=account_id, meter_id=spec.meter
                )
            except MetercomError as exc:
                log.error("prepaid account %s could not be loaded: %s", account_id, exc)
                continue
            self.accounts[account_id] = account
            self._persisted[account_id] = len(rows)
        self._meter_accounts = {a.meter: a.account for a in prepaid.accounts if a.account in self.accounts}
        self._registers = {a.meter: Obis.parse(a.register) for a in prepaid.accounts}
        self.commands.top_up_handler = self.top_up_handler

    # -- the collector's availability listener -------------------------------------------------------

    async def on_meter_unavailable(self, meter: str, at: datetime, error: BaseException) -> None:
        self.center.link_down(meter, at, f"{type(error).__name__}: {error}")
        if isinstance(error, AuthenticationError):
            self.center.raise_alarm(
                Alarm.of(AlarmKind.AUTH_FAILURE, meter, at, f"authentication failed: {error}")
            )
        if self.listener is not None:
            await self.listener.on_meter_unavailable(meter, at, error)

    async def on_meter_available(self, meter: str, at: datetime) -> None:
        self.center.link_up(meter, at)
        self.center.clear_key(f"{AlarmKind.AUTH_FAILURE.value}:{meter}", at, "the meter answers again")
        if self.listener is not None:
            await self.listener.on_meter_available(meter, at)

    # -- the collector's hook ------------------------------------------------------------------------

    async def on_collected(
        self, meter: MeterConfig, data: CollectedData, since: Mapping[str, datetime]
    ) -> None:
        """Feed one successful read to rules, the neutral detector, event alarms and prepaid."""
        now = self.clock.now()
        async with self._lock(meter.id):
            readings = list(data.readings)
            values = quantities(readings)
            at = _sample_time(readings, now)
            if values and self.engine.rules(meter.id):
                await self._rules(meter.id, at, values)
            neutral_off = meter.id in self._neutral_configs and self._neutral_configs[meter.id] is None
            if all(f"L{n}U" in values for n in (1, 2, 3)) and not neutral_off:
                self._neutral(meter.id, at, values)
            for log_name, events in data.events.items():
                # New: after the log's marker before this read, and after what an earlier read
                # (whose save may not have been visible to this read's start) already showed.
                mark = (meter.id, log_name)
                starts = [t for t in (since.get(log_name), self._event_marks.get(mark)) if t is not None]
                start = max(starts) if starts else None
                fresh = [e for e in events if start is None or e.time > start]
                self._event_alarms(meter, fresh)
                if fresh:
                    self._event_marks[mark] = max(e.time for e in fresh)
            account_id = self._meter_accounts.get(meter.id)
            if account_id is not None and account_id in self.accounts:
                await self._prepaid_cycle(self.accounts[account_id], readings, now)
        self._maybe_push(meter.id)

    async def _rules(self, meter_id: str, at: datetime, values: Mapping[str, Decimal]) -> None:
        try:
            transitions = self.engine.observe(meter_id, at, values)
        except RuleError as exc:
            log.warning("meter %s: sample at %s not used for rules: %s", meter_id, at.isoformat(), exc)
            return
        for transition in transitions:
            token = _current_rule.set(transition.rule.name)
            try:
                action = await self.rules.execute(transition)
            finally:
                _current_rule.reset(token)
            await self._rule_recorded(action)

    async def _rule_recorded(self, action: RuleAction) -> None:
        t = action.transition
        rule = t.rule
        result = "dry_run" if action.dry_run else ("ok" if action.acted else "failed")
        seen = {name: str(value) for name, value in t.values_seen.items()}
        detail: dict[str, Any] = {
            "meter": t.meter_id,
            "slot": t.slot,
            "at": t.at.isoformat(),
            "command": t.command.value,
            "targets": list(rule.targets),
            "expression": rule.expression.to_text(),
            "values": seen,
            "failures": [list(f) for f in action.failures],
        }
        try:
            await self.store.audit(
                actor=f"rule:{rule.name}",
                action=f"rule.{t.state.value}",
                subject=t.meter_id,
                result=result,
                detail=detail,
            )
        except StoreError as exc:
            log.error("rule %s: audit not written: %s", rule.name, exc)
        key = f"{AlarmKind.RULE.value}:{rule.name}:{t.meter_id}"
        prefix = "dry run: " if action.dry_run else ""
        if t.state is RuleState.TRIGGERED:
            values = ", ".join(f"{k}={v}" for k, v in sorted(seen.items()))
            self.center.raise_alarm(
                Alarm.of(
                    AlarmKind.RULE,
                    t.meter_id,
                    t.at,
                    f"{prefix}rule {rule.name}: {rule.expression.to_text()} ({values}); "
                    f"{t.command.value} {', '.join(rule.targets)}",
                    details={
                        "rule": rule.name,
                        "command": t.command.value,
                        "dry_run": action.dry_run,
                        "result": result,
                    },
                    dedup_key=key,
                )
            )
        else:
            self.center.clear_key(key, t.at, f"{prefix}rule {rule.name} recovered: {t.command.value}")

    def _neutral(self, meter_id: str, at: datetime, values: Mapping[str, Decimal]) -> None:
        detector = self.neutral.get(meter_id)
        if detector is None:
            detector = self.neutral[meter_id] = BrokenNeutralDetector(self._neutral_configs.get(meter_id))
        try:
            assessment = detector.observe(at, (values["L1U"], values["L2U"], values["L3U"]))
        except RuleError as exc:
            log.debug("meter %s: neutral check skipped: %s", meter_id, exc)
            return
        event = assessment.event
        if event is None:
            return
        key = f"{AlarmKind.BROKEN_NEUTRAL.value}:{meter_id}"
        volts = "/".join(f"{v:.1f}" for v in event.voltages)
        if event.kind is NeutralEventKind.DETECTED:
            self.center.raise_alarm(
                Alarm.of(
                    AlarmKind.BROKEN_NEUTRAL,
                    meter_id,
                    event.at,
                    f"broken neutral suspected: phase voltages {volts} V (score {event.score:.2f})",
                    details={"voltages": volts, "score": round(event.score, 3)},
                )
            )
        else:
            self.center.clear_key(key, event.at, f"phase voltages back to normal ({volts} V)")

    def _event_alarms(self, meter: MeterConfig, events: Sequence[MeterEvent]) -> None:
        for event in sorted(events, key=lambda e: e.time):
            if meter.protocol is MeterProtocol.MODBUS:
                found = MODBUS_EVENT_ALARMS.get(event.description)
            else:
                found = DLMS_EVENT_ALARMS.get(event.code)
            if found is None:
                continue
            kind, raising, text = found
            details: dict[str, JsonScalar] = {
                "code": event.code,
                "log": event.log,
                "event": event.description or text,
            }
            if raising:
                self.center.raise_alarm(Alarm.of(kind, meter.id, event.time, text, details=details))
            else:
                self.center.clear_key(f"{kind.value}:{meter.id}", event.time, text)

    # -- prepaid -------------------------------------------------------------------------------------

    def account_of_meter(self, meter_id: str) -> PrepaidAccount:
        account_id = self._meter_accounts.get(meter_id)
        if account_id is None or account_id not in self.accounts:
            raise InputError(f"meter {meter_id!r} has no prepaid account")
        return self.accounts[account_id]

    def account(self, account_id: str) -> PrepaidAccount:
        try:
            return self.accounts[account_id]
        except KeyError:
            raise InputError(f"unknown prepaid account {account_id!r}") from None

    async def _prepaid_cycle(
        self, account: PrepaidAccount, readings: Sequence[Reading], now: datetime
    ) -> None:
        prepaid = self._prepaid
        if prepaid is None:
            return
        register = self._registers.get(account.meter_id)
        reading: RegisterReading | None = None
        for r in readings:
            if register is not None and r.obis is not None and same_quantity(r.obis, register):
                wh = _register_wh(r)
                if wh is not None and wh >= 0:
                    reading = RegisterReading(r.captured_at or now, wh)
                break
        try:
            report = await prepaid.runner.run_cycle(
                account, reading=reading, relay=_relay_state(readings), now=now
            )
        except MetercomError as exc:
            log.error("meter %s: prepaid cycle failed: %s", account.meter_id, exc)
            await self._persist(account)
            return
        await self._persist(account)
        held = report.decision.held_until
        if held is not None:
            self._recheck_at(account, held)

    def _recheck_at(self, account: PrepaidAccount, when: datetime) -> None:
        old = self._rechecks.get(account.account_id)
        if old is not None and not old.done():
            old.cancel()

        async def recheck() -> None:
            delay = (when - self.clock.now()).total_seconds() + 1.0
            if delay > 0:
                await asyncio.sleep(delay)
            prepaid = self._prepaid
            if prepaid is None or self.accounts.get(account.account_id) is not account:
                return
            async with self._lock(account.meter_id):
                try:
                    report = await prepaid.runner.run_cycle(account)
                except MetercomError as exc:
                    log.error("meter %s: prepaid re-check failed: %s", account.meter_id, exc)
                    return
                finally:
                    await self._persist(account)
            if report.decision.held_until is not None and report.decision.held_until > when:
                self._recheck_at(account, report.decision.held_until)

        self._rechecks[account.account_id] = asyncio.create_task(
            recheck(), name=f"prepaid recheck {account.account_id}"
        )

    async def _persist(self, account: PrepaidAccount) -> None:
        done = self._persisted.get(account.account_id, 0)
        rows = account.to_records(since_seq=done)
        if not rows:
            return
        try:
            await self.tables.save_ledger(rows)
        except StoreError as exc:
            log.error(
                "prepaid account %s: ledger not stored (kept in memory, retried): %s", account.account_id, exc
            )
            return
        self._persisted[account.account_id] = done + len(rows)

    async def top_up_handler(self, record: CommandRecord) -> dict[str, Any]:
        """Run a ``top_up`` command: credit once per key, store, then a prepaid cycle."""
        prepaid = self._prepaid
        if prepaid is None:
            raise CommandFailed("top_up: prepaid is not configured")
        args = record.args
        account = self.account(str(args["account_id"]))
        amount = int(args["amount_minor"])
        key = str(args.get("key") or record.idempotency_key or record.id)
        async with self._lock(account.meter_id):
            result = account.top_up(key, amount, self.clock.now(), reference=f"command {record.id}")
            await self._persist(account)
            if self._persisted.get(account.account_id, 0) < len(account.events):
                raise CommandFailed(f"top_up: the credit of account {account.account_id} could not be stored")
            report = await prepaid.runner.run_cycle(account)
            await self._persist(account)
        return {
            "account_id": account.account_id,
            "key": key,
            "amount_minor": amount,
            "credit": str(result.event.credit),
            "duplicate": result.duplicate,
            "seq": result.event.seq,
            "balance": str(account.balance),
            "unit": account.tariff.unit_label,
            "done": [type(a).__name__.lower() for a in report.done],
            "failed": [f"{type(a).__name__.lower()}: {why}" for a, why in report.failed],
        }

    def statement(self, meter_id: str, year: int, month: int) -> MonthlyStatement:
        if self._prepaid is None:
            raise InputError("prepaid is not configured")
        return monthly_statement(self.account_of_meter(meter_id), year, month, self._prepaid.zone)

    # -- alarm persistence ---------------------------------------------------------------------------

    def _alarm_changed(self, record: AlarmRecord) -> None:
        self._dirty[record.alarm_id] = record
        self._wake.set()

    async def _flush_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except StoreError as exc:
                log.error("alarms not stored (retried at the next change): %s", exc)

    async def flush(self) -> None:
        """Write every changed alarm episode to the store."""
        async with self._flush_lock:
            while self._dirty:
                batch = list(self._dirty.values())
                self._dirty.clear()
                rows = [_row_of(r) for r in batch]
                try:
                    await self.tables.save_alarms(rows)
                except StoreError:
                    for record in batch:
                        self._dirty.setdefault(record.alarm_id, record)
                    raise

    async def alarms(
        self,
        *,
        state: AlarmState | str | None = None,
        meter_id: str | None = None,
        kind: AlarmKind | str | None = None,
        active: bool | None = None,
        limit: int = 1000,
    ) -> list[AlarmRecord]:
        """Stored alarm episodes (after writing pending changes), most recent first."""
        await self.flush()
        rows = await self.tables.alarm_rows(
            state=AlarmState(state).value if state is not None else None,
            meter_id=meter_id,
            kind=AlarmKind(kind).value if kind is not None else None,
            active=active,
            limit=limit,
        )
        return [_record_of(r) for r in rows]

    async def acknowledge(self, alarm_id: str, user: str, note: str = "") -> AlarmRecord:
        """Acknowledge an episode and store it before returning."""
        try:
            self.center.get(alarm_id)
        except MetercomError:
            rows = await self.tables.alarm_rows(alarm_id=alarm_id)
            if not rows:
                raise InputError(f"no alarm {alarm_id!r}") from None
            self.center.restore(_record_of(rows[0]))
        record = self.center.acknowledge(alarm_id, user, note=note)
        await self.flush()
        return record
