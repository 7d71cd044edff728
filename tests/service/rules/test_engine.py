"""Rule engine and runner on the virtual clock: averaging, hysteresis, dry run, slots, pushing.

The central scenario is the issue's: an over-voltage rule ``(L1U > 253) || (L2U > 253) ||
(L3U > 253)`` with a 10 s average and a 60 s recovery drives a simulated relay meter. A sampler
task reads the meter every second of *virtual* time; the relay records the virtual time of
every command it receives, and the test asserts those instants exactly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from metercom.clock import VirtualClock, current_clock
from metercom.errors import RuleError, TransportError
from metercom.model.rules import (
    Command,
    Rule,
    RuleEngine,
    RuleState,
    RuleTransition,
    decode_slot,
    encode_slot,
    parse,
)
from metercom.service.rules.engine import RuleRunner
from metercom.sim.load import (
    EventConfig,
    EventKind,
    Household,
    LoadConfig,
    LoadModel,
    Phase,
    ScheduledEvent,
)

OVER_VOLTAGE = "(L1U > 253) || (L2U > 253) || (L3U > 253)"
S = timedelta(seconds=1)
T0 = datetime(2026, 1, 1, tzinfo=UTC)  # the virtual clock's start


@dataclass
class SimulatedRelayMeter:
    """A relay meter's outputs behind the Actuator protocol, recording (virtual time, target, command)."""

    outputs: dict[str, Command] = field(default_factory=lambda: {"relay1": Command.CONNECT})
    log: list[tuple[datetime, str, Command]] = field(default_factory=list)
    failing: set[str] = field(default_factory=set)

    async def apply(self, meter_id: str, target: str, command: Command) -> None:
        await asyncio.sleep(0.05)  # a command takes a little while on the wire
        if target in self.failing:
            raise TransportError(f"no answer from {meter_id} setting {target}")
        self.outputs[target] = command
        self.log.append((current_clock().now(), target, command))


def over_voltage_rule(**changes: object) -> Rule:
    kwargs: dict[str, object] = {
        "window": 10 * S,
        "recovery": 60 * S,
        "action": Command.DISCONNECT,
        "targets": ("relay1",),
    }
    kwargs.update(changes)
    return Rule.from_text("over-voltage", OVER_VOLTAGE, **kwargs)  # type: ignore[arg-type]


Profile = Callable[[float], tuple[float, float, float]]


async def sample_every(
    runner: RuleRunner,
    profile: Profile,
    *,
    period_s: float | Sequence[float],
    until_s: float,
    meter: str = "m1",
) -> list[tuple[float, dict[str, Decimal]]]:
    """Read the 'meter' on the virtual clock and feed the runner; returns what was sampled.

    Readings are due at fixed offsets from the start (the periods, cycled), whatever time the
    relay commands take, as a collector's schedule would have them.
    """
    clock = current_clock()
    start = clock.monotonic()
    periods = [float(period_s)] if isinstance(period_s, float | int) else list(period_s)
    sampled = []
    due = 0.0
    k = 0
    while due <= until_s:
        await asyncio.sleep(max(0.0, start + due - clock.monotonic()))
        l1, l2, l3 = profile(due)
        values = {"L1U": Decimal(str(l1)), "L2U": Decimal(str(l2)), "L3U": Decimal(str(l3))}
        sampled.append((due, values))
        await runner.observe(meter, clock.now(), values)
        due = round(due + periods[k % len(periods)], 6)
        k += 1
    return sampled


def reference_switching(
    sampled: list[tuple[float, dict[str, Decimal]]], window_s: float, recovery_s: float, threshold: Decimal
) -> list[tuple[float, bool]]:
    """An independent, brute-force model of the specified behaviour: for every sample, integrate
    each phase's step function (each sample holds back to the previous one) over the window,
    then apply the trigger / recovery rule."""
    out: list[tuple[float, bool]] = []
    triggered = False
    false_since: float | None = None
    first = sampled[0][0]
    for i, (t, _) in enumerate(sampled):
        if t - first < window_s:
            continue
        averages = []
        for name in ("L1U", "L2U", "L3U"):
            total = Decimal(0)
            for j in range(1, i + 1):
                lo = max(sampled[j - 1][0], t - window_s)
                hi = sampled[j][0]
                if hi > lo:
                    total += sampled[j][1][name] * Decimal(str(round(hi - lo, 6)))
            averages.append(total / Decimal(str(window_s)))
        true = any(a > threshold for a in averages)
        if not triggered and true:
            triggered = True
            out.append((t, True))
        elif triggered and true:
            false_since = None
        elif triggered:
            false_since = t if false_since is None else false_since
            if t - false_since >= recovery_s - 1e-9:
                triggered = False
                false_since = None
                out.append((t, False))
    return out


def step_profile(t: float) -> tuple[float, float, float]:
    """230 V, except L2 at 260 V for the samples from t=100 s to t=199 s."""
    return (230.0, 260.0 if 100 <= t < 200 else 230.0, 231.5)


# ---------------------------------------------------------------------------------------------
# The scenario


async def test_over_voltage_rule_switches_the_relay_exactly_when_it_should(vclock: VirtualClock) -> None:
    engine = RuleEngine()
    engine.configure("m1", [over_voltage_rule()])
    relay = SimulatedRelayMeter()
    runner = RuleRunner(engine, relay)
    sampled = await sample_every(runner, step_profile, period_s=1.0, until_s=400)
    # Hand-worked: the average over (t-10, t] is the mean of the last ten 1-s samples. At t=106
    # it is (3 x 230 + 7 x 260) / 10 = 251, at t=107 (2 x 230 + 8 x 260) / 10 = 254 > 253: the
    # relay opens. At t=201 it is still 254, at t=202 251 (first false); 60 s later, at t=262,
    # it closes. Each command takes 0.05 s on the wire, so the relay sees it 0.05 s later.
    assert relay.log == [
        (T0 + 107.05 * S, "relay1", Command.DISCONNECT),
        (T0 + 262.05 * S, "relay1", Command.CONNECT),
    ]
    # ...which is what the brute-force reference says too.
    assert reference_switching(sampled, 10, 60, Decimal(253)) == [(107.0, True), (262.0, False)]
    transitions = [a.transition for a in runner.history]
    assert [(t.state, t.command, t.at) for t in transitions] == [
        (RuleState.TRIGGERED, Command.DISCONNECT, T0 + 107 * S),
        (RuleState.RECOVERED, Command.CONNECT, T0 + 262 * S),
    ]
    assert transitions[0].values_seen == {"L1U": Decimal(230), "L2U": Decimal(254), "L3U": Decimal("231.5")}
    assert all(a.acted for a in runner.history)
    assert relay.outputs == {"relay1": Command.CONNECT}


async def test_dry_run_leaves_the_relay_untouched_but_records(
    vclock: VirtualClock, caplog: pytest.LogCaptureFixture
) -> None:
    engine = RuleEngine()
    engine.configure("m1", [over_voltage_rule(dry_run=True)])
    relay = SimulatedRelayMeter()
    runner = RuleRunner(engine, relay)
    with caplog.at_level(logging.INFO, logger="metercom.service.rules.engine"):
        await sample_every(runner, step_profile, period_s=1.0, until_s=400)
    assert relay.log == []
    assert relay.outputs == {"relay1": Command.CONNECT}
    # The same transitions at the same instants (no wire delay: nothing is sent).
    assert [(a.transition.state, a.transition.at, a.acted, a.dry_run) for a in runner.history] == [
        (RuleState.TRIGGERED, T0 + 107 * S, False, True),
        (RuleState.RECOVERED, T0 + 262 * S, False, True),
    ]
    assert [a.at for a in runner.history] == [T0 + 107 * S, T0 + 262 * S]
    dry = [r.getMessage() for r in caplog.records if "dry run" in r.getMessage()]
    assert len(dry) == 2
    assert "would disconnect relay1" in dry[0]
    assert "would connect relay1" in dry[1]


async def test_a_short_return_above_the_limit_restarts_the_recovery(vclock: VirtualClock) -> None:
    def profile(t: float) -> tuple[float, float, float]:
        high = 100 <= t < 200 or 230 <= t < 240
        return (230.0, 260.0 if high else 230.0, 230.0)

    engine = RuleEngine()
    engine.configure("m1", [over_voltage_rule()])
    relay = SimulatedRelayMeter()
    runner = RuleRunner(engine, relay)
    sampled = await sample_every(runner, profile, period_s=1.0, until_s=400)
    # False from t=202; true again from t=237 (8 of the last 10 samples at 260) to t=241; false
    # from t=242; reverts at t=302 - not at t=262.
    assert [t for t, _, _ in relay.log] == [T0 + 107.05 * S, T0 + 302.05 * S]
    assert reference_switching(sampled, 10, 60, Decimal(253)) == [(107.0, True), (302.0, False)]


async def test_irregular_samples_from_a_load_model_swell(vclock: VirtualClock) -> None:
    # A simulated 3-phase meter on the load model, with a 15 % swell on L3 for 90 s; the
    # collector reads it at irregular intervals (0.7 s .. 4.3 s).
    swell_start = T0 + timedelta(minutes=3)
    config = LoadConfig(
        Household.seed_example(phases=(Phase.L1, Phase.L2, Phase.L3)),
        events=EventConfig(
            scheduled=(
                ScheduledEvent(EventKind.SWELL, swell_start, timedelta(seconds=90), (Phase.L3,), 1.15),
            )
        ),
    )
    model = LoadModel(config, seed=7, start=T0)

    def profile(t: float) -> tuple[float, float, float]:
        snap = model.snapshot(T0 + timedelta(seconds=t))
        a, b, c = (round(p.voltage_v, 2) for p in snap.phases)
        return a, b, c

    engine = RuleEngine()
    engine.configure("m1", [over_voltage_rule()])
    relay = SimulatedRelayMeter()
    runner = RuleRunner(engine, relay)
    sampled = await sample_every(runner, profile, period_s=[0.7, 2.5, 1.3, 4.3, 1.0], until_s=600)
    reference = reference_switching(sampled, 10, 60, Decimal(253))
    assert len(reference) == 2
    assert [(t - T0) / S for t, _, _ in relay.log] == pytest.approx([t + 0.05 for t, _ in reference])
    assert [c for _, _, c in relay.log] == [Command.DISCONNECT, Command.CONNECT]
    # It switched during the swell, and reverted at least a minute after the swell ended.
    assert swell_start < relay.log[0][0] < swell_start + timedelta(seconds=90)
    assert relay.log[1][0] >= swell_start + timedelta(seconds=90 + 60)


# ---------------------------------------------------------------------------------------------
# Engine semantics, without a clock


def feed(
    engine: RuleEngine, samples: Sequence[tuple[float, Mapping[str, Decimal | float | int]]]
) -> list[RuleTransition]:
    out: list[RuleTransition] = []
    for t, values in samples:
        out += engine.observe("m1", T0 + timedelta(seconds=t), values)
    return out


def test_energy_is_never_averaged() -> None:
    engine = RuleEngine()
    engine.configure(
        "m1",
        [
            Rule.from_text("energy", "L1e > 100", window=timedelta(minutes=5), targets=("relay1",)),
            Rule.from_text("power", "L1p > 100", window=timedelta(minutes=5), targets=("relay2",)),
        ],
    )
    samples = [(float(t), {"L1e": Decimal(90), "L1p": Decimal(90)}) for t in range(0, 301, 10)]
    samples += [(310.0, {"L1e": Decimal("100.5"), "L1p": Decimal(1000)})]
    transitions = feed(engine, samples)
    # The energy register triggers on its own latest value; the power's 5-min average is
    # (29 x 10 s x 90 + 10 s x 1000) / 300 s = 120.33 > 100 too - so check the values seen.
    assert [t.rule.name for t in transitions] == ["energy", "power"]
    assert transitions[0].values_seen == {"L1e": Decimal("100.5")}
    assert abs(transitions[1].values_seen["L1p"] - Decimal(36100) / Decimal(300)) < Decimal("1e-20")
    engine.configure("m1", [Rule.from_text("energy", "Te > 5", window=timedelta(hours=1))])
    # No warm-up for energy: the first sample decides.
    assert [t.values_seen for t in feed(engine, [(400.0, {"Te": 6})])] == [{"Te": Decimal(6)}]


def test_warm_up_until_the_window_is_covered() -> None:
    engine = RuleEngine()
    engine.configure("m1", [Rule.from_text("ov", "L1U > 253", window=10 * S)])
    transitions = feed(engine, [(float(t), {"L1U": 300}) for t in range(12)])
    assert [(t.at - T0) / S for t in transitions] == [10]  # samples 0..10 cover 10 s


def test_sparse_samples_average_to_the_latest_value() -> None:
    engine = RuleEngine()
    engine.configure("m1", [Rule.from_text("ov", "L1U > 253", window=10 * S, recovery=0 * S)])
    transitions = feed(engine, [(0.0, {"L1U": 230}), (900.0, {"L1U": 254}), (1800.0, {"L1U": 253})])
    assert [((t.at - T0) / S, t.state, t.values_seen) for t in transitions] == [
        (900, RuleState.TRIGGERED, {"L1U": Decimal(254)}),
        (1800, RuleState.RECOVERED, {"L1U": Decimal(253)}),
    ]


def test_a_zero_window_uses_the_latest_value_and_a_zero_recovery_reverts_at_once() -> None:
    engine = RuleEngine()
    engine.configure("m1", [Rule.from_text("oc", "L1I > 16", action=Command.LOW)])
    transitions = feed(
        engine, [(0.0, {"L1I": 17}), (1.0, {"L1I": 17}), (2.0, {"L1I": 16}), (3.0, {"L1I": 20})]
    )
    assert [((t.at - T0) / S, t.command) for t in transitions] == [
        (0, Command.LOW),
        (2, Command.HIGH),
        (3, Command.LOW),
    ]


def test_undecided_evaluations_change_nothing_and_restart_recovery() -> None:
    engine = RuleEngine()
    engine.configure("m1", [Rule.from_text("r", "(L1U > 253) || (L2U > 253)", recovery=10 * S)])
    transitions = feed(
        engine,
        [
            (0.0, {"L1U": 230}),  # L2U missing and L1U false: undecided
            (1.0, {"L1U": 260}),  # true (|| short-circuits past the missing L2U)
            (2.0, {"L1U": 230, "L2U": 230}),  # false from 2 s
            (8.0, {"L1U": 230, "L2U": float("nan")}),  # NaN ignored: L2U keeps 230, still false
            (9.0, {"L1U": "x"}),  # type: ignore[dict-item]  # not a number either: ignored
            (11.0, {"L1U": 230, "L2U": 230}),  # false for 9 s only
            (12.0, {"L1U": 230, "L2U": 230}),  # 10 s: recovered
        ],
    )
    assert [((t.at - T0) / S, t.state) for t in transitions] == [
        (1, RuleState.TRIGGERED),
        (12, RuleState.RECOVERED),
    ]
    engine.configure("m2", [Rule.from_text("r", "L1p / L1I > 1", recovery=10 * S)])
    assert engine.observe("m2", T0, {"L1p": 5, "L1I": 1})
    engine.observe("m2", T0 + 5 * S, {"L1p": 0, "L1I": 1})  # false from 5 s
    engine.observe("m2", T0 + 14 * S, {"L1p": 0, "L1I": 0})  # division by zero: undecided
    assert not engine.observe("m2", T0 + 15 * S, {"L1p": 0, "L1I": 1})  # recovery restarted at 15 s
    assert engine.observe("m2", T0 + 25 * S, {"L1p": 0, "L1I": 1})[0].state is RuleState.RECOVERED


def test_slots() -> None:
    rules = [Rule.from_text(f"r{k}", f"L1U > {200 + k}") for k in range(9)]
    engine = RuleEngine()
    engine.configure("m1", rules[:8])
    with pytest.raises(RuleError, match="only 8 slots"):
        engine.configure("m1", rules)
    assert engine.rules("m1") == tuple(rules[:8])  # an invalid list changed nothing
    transitions = engine.observe("m1", T0, {"L1U": 204})
    assert [(t.slot, t.rule.name) for t in transitions] == [(k + 1, f"r{k}") for k in range(4)]
    small = RuleEngine(max_slots=2)
    with pytest.raises(RuleError, match="only 2 slots"):
        small.configure("m1", rules[:3])
    with pytest.raises(RuleError, match="unique"):
        engine.configure("m1", [rules[0], rules[0]])
    with pytest.raises(RuleError):
        RuleEngine(max_slots=0)


def test_disabled_rules_and_unknown_meters() -> None:
    engine = RuleEngine()
    engine.configure("m1", [Rule.from_text("r", "L1U > 1", enabled=False)])
    assert engine.observe("m1", T0, {"L1U": 300}) == []
    assert engine.observe("nobody", T0, {"L1U": 300}) == []
    assert engine.status("nobody") == ()


def test_reconfiguring_keeps_unchanged_rules() -> None:
    engine = RuleEngine()
    ov = Rule.from_text("ov", "L1U > 253", recovery=60 * S)
    oc = Rule.from_text("oc", "L1I > 16", recovery=60 * S)
    engine.configure("m1", [ov, oc])
    assert len(engine.observe("m1", T0, {"L1U": 260, "L1I": 20})) == 2
    engine.configure("m1", [ov, Rule.from_text("oc", "L1I > 20", recovery=60 * S)])
    status = {s.rule.name: s for s in engine.status("m1")}
    assert status["ov"].triggered
    assert status["ov"].since == T0
    assert not status["oc"].triggered  # changed: starts afresh
    engine.remove("m1")
    assert engine.rules("m1") == ()


def test_sample_checks() -> None:
    engine = RuleEngine()
    engine.configure("m1", [Rule.from_text("r", "L1U > 1", window=10 * S)])
    engine.observe("m1", T0 + 5 * S, {"L1U": 1})
    engine.observe("m1", T0 + 5 * S, {"L1U": 2})  # same instant: allowed, replaces
    with pytest.raises(RuleError, match="time order"):
        engine.observe("m1", T0, {"L1U": 1})
    with pytest.raises(RuleError, match="timezone-aware"):
        engine.observe("m1", datetime(2026, 1, 1), {"L1U": 1})  # noqa: DTZ001 - naive on purpose


def test_a_repeated_timestamp_replaces_the_value() -> None:
    engine = RuleEngine()
    engine.configure("m1", [Rule.from_text("r", "L1U > 253", window=10 * S)])
    feed(engine, [(float(t), {"L1U": 230}) for t in range(10)])
    assert engine.observe("m1", T0 + 10 * S, {"L1U": 1000})  # (9 x 230 + 1000) / 10 = 307
    engine.configure("m2", [Rule.from_text("r", "L1U > 253", window=10 * S, recovery=60 * S)])
    for t in range(10):
        engine.observe("m2", T0 + t * S, {"L1U": 230})
    engine.observe("m2", T0 + 10 * S, {"L1U": 1000})
    engine.observe("m2", T0 + 10 * S, {"L1U": 230})  # corrected: now 230 again
    status = engine.status("m2")[0]
    assert status.triggered  # the first value triggered; the correction counts from now on
    assert status.last_result is False


def test_rule_validation() -> None:
    with pytest.raises(RuleError, match="window"):
        Rule.from_text("r", "L1U > 1", window=timedelta(days=2))
    with pytest.raises(RuleError, match="recovery"):
        Rule.from_text("r", "L1U > 1", recovery=-S)
    with pytest.raises(RuleError, match="target"):
        Rule.from_text("r", "L1U > 1", targets=())
    with pytest.raises(RuleError, match="twice"):
        Rule.from_text("r", "L1U > 1", targets=("a", "a"))
    with pytest.raises(RuleError, match="name"):
        Rule.from_text("", "L1U > 1")
    with pytest.raises(RuleError, match="parsed"):
        Rule("r", "L1U > 1")  # type: ignore[arg-type]
    with pytest.raises(RuleError, match="column 7"):
        Rule.from_text("r", "L1U > > 1")
    assert Command.CONNECT.inverse is Command.DISCONNECT
    assert Command.HIGH.inverse is Command.LOW


# ---------------------------------------------------------------------------------------------
# Runner


async def test_runner_records_failures_and_keeps_going(vclock: VirtualClock) -> None:
    engine = RuleEngine()
    engine.configure("m1", [Rule.from_text("r", "L1U > 253", targets=("relay1", "relay2"))])
    relay = SimulatedRelayMeter(failing={"relay1"})
    runner = RuleRunner(engine, relay, clock=vclock)
    (action,) = await runner.observe("m1", vclock.now(), {"L1U": 300})
    assert not action.acted
    assert action.applied == ("relay2",)
    assert action.failures == (("relay1", "no answer from m1 setting relay1"),)
    assert relay.outputs["relay2"] is Command.DISCONNECT
    assert action.at == T0 + 0.1 * S  # two commands of 0.05 s each


async def test_meters_are_independent(vclock: VirtualClock) -> None:
    engine = RuleEngine()
    for meter in ("a", "b"):
        engine.configure(meter, [Rule.from_text("ov", "L1U > 253", window=2 * S)])
    relay = SimulatedRelayMeter()
    runner = RuleRunner(engine, relay)
    for t in range(4):
        await runner.observe("a", T0 + t * S, {"L1U": 260})
        await runner.observe("b", T0 + t * S, {"L1U": 230})
    assert [(a.transition.meter_id, a.transition.at) for a in runner.history] == [("a", T0 + 2 * S)]


# ---------------------------------------------------------------------------------------------
# Pushing to a relay meter


def test_slot_round_trip() -> None:
    rule = over_voltage_rule(targets=("relay1", "relay3"), dry_run=True)
    outputs = {"relay1": 1, "relay2": 2, "relay3": 3}
    data = encode_slot(rule, outputs)
    assert data[:14].hex(" ") == "4d 53 01 03 02 05 00 00 27 10 00 00 ea 60"
    assert decode_slot(data, outputs) == rule
    assert decode_slot(
        encode_slot(Rule.from_text("x", "Te > 5", action=Command.HIGH, enabled=False), {"relay1": 8}),
        {"relay1": 8},
    ) == Rule.from_text("x", "Te > 5", action=Command.HIGH, enabled=False)
    with pytest.raises(RuleError, match="output number"):
        encode_slot(rule, {"relay1": 1})
    with pytest.raises(RuleError, match="whole milliseconds"):
        encode_slot(over_voltage_rule(window=timedelta(microseconds=1500)), outputs)
    with pytest.raises(RuleError, match="has no target id"):
        decode_slot(data, {"relay1": 1})
    for bad in (data[:5], b"XX" + data[2:], data[:15], data[:14] + b"\xff" + data[15:]):
        with pytest.raises(RuleError):
            decode_slot(bad, outputs)
    assert parse(OVER_VOLTAGE).to_bytes() == data[14 + 1 + len("over-voltage") :]
