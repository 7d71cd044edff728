"""The vocabulary of value sources in device profiles: ``source = "<kind>:<name>"``.

Rule: a profile binds a dynamic attribute to a *source* instead of a fixed value, e.g. the
value of ``1-0:32.7.0*255`` to ``"load:voltage_l1"``. The model only names and validates the
sources; the simulator's load model gives them values (in SI units: V, A, W, var, VA, Wh, varh,
VAh, Hz, minutes, and the register's scaler_unit turns them into raw integers via
:func:`metercom.model.cosem.raw_value`). A typo in a profile is caught at load time.

Kinds and names:

``load:<quantity>``
    instantaneous value: ``voltage``, ``current``, ``active_power_import``,
    ``active_power_export``, ``active_power`` (signed, import - export),
    ``reactive_power_import``, ``reactive_power_export``, ``apparent_power_import``,
    ``apparent_power_export``, ``power_factor`` (signed), each also per phase with
    ``_l1``/``_l2``/``_l3``; plus ``current_n`` (neutral) and ``frequency``.
``average:<quantity>``
    the same quantities averaged over the capture period of the profile that captures the
    object (IS 15959 block load: value group D = 27).
``billing_average:<quantity>``
    the same quantities averaged over the current billing period (IS 15959 average power
    factor 1.0.13.0.0.255).
``energy:<register>``
    cumulative energy: ``active_import``, ``active_export``, ``reactive_import``,
    ``reactive_export``, ``reactive_q1`` .. ``reactive_q4``, ``apparent_import``,
    ``apparent_export``, each also per tariff with ``_t1`` .. ``_t8``.
``block_energy:<register>``
    energy of the last completed capture period (IS 15959 block energy: D = 29).
``demand:<register>`` / ``demand_last:<register>``
    current / last average demand of a Demand register (attributes 2 and 3).
``demand_max:<register>`` / ``demand_max_time:<register>``
    maximum demand since the last reset and its time (Extended register value and
    capture_time; tariff suffixes allowed).
``clock:now``
    the simulated meter's local time (Clock attribute 2).
``counter:<name>``
    ``billing_resets``, ``programming``, ``tamper``, ``power_failures``, ``power_on_minutes``,
    ``power_off_minutes``.
``event:<group>``
    the last event code of an IS 15959 event group: ``voltage``, ``current``, ``power``,
    ``transaction``, ``other``, ``non_rollover``, ``control``.
``status:<name>``
    ``profile`` (the AMR profile status byte 0.0.96.10.1.255).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["SOURCE_KINDS", "describe_source", "is_valid_source", "source_names"]

_PHASED = (
    "voltage",
    "current",
    "active_power_import",
    "active_power_export",
    "active_power",
    "reactive_power_import",
    "reactive_power_export",
    "apparent_power_import",
    "apparent_power_export",
    "power_factor",
)
_QUANTITIES = frozenset(
    [*_PHASED, *(f"{q}_{p}" for q in _PHASED for p in ("l1", "l2", "l3")), "current_n", "frequency"]
)
_REGISTERS = (
    "active_import",
    "active_export",
    "reactive_import",
    "reactive_export",
    "reactive_q1",
    "reactive_q2",
    "reactive_q3",
    "reactive_q4",
    "apparent_import",
    "apparent_export",
)
_TARIFFED = frozenset([*_REGISTERS, *(f"{r}_t{t}" for r in _REGISTERS for t in range(1, 9))])
_PLAIN_REGISTERS = frozenset(_REGISTERS)

#: kind -> (allowed names, meaning).
SOURCE_KINDS: Mapping[str, tuple[frozenset[str], str]] = MappingProxyType(
    {
        "load": (_QUANTITIES, "instantaneous value from the load model"),
        "average": (_QUANTITIES, "average over the capture period of the capturing profile"),
        "billing_average": (_QUANTITIES, "average over the current billing period"),
        "energy": (_TARIFFED, "cumulative energy register"),
        "block_energy": (_PLAIN_REGISTERS, "energy of the last completed capture period"),
        "demand": (_PLAIN_REGISTERS, "current average demand"),
        "demand_last": (_PLAIN_REGISTERS, "last average demand"),
        "demand_max": (_TARIFFED, "maximum demand since the last reset"),
        "demand_max_time": (_TARIFFED, "time of the maximum demand"),
        "clock": (frozenset({"now"}), "the simulated meter's local time"),
        "counter": (
            frozenset(
                {
                    "billing_resets",
                    "programming",
                    "tamper",
                    "power_failures",
                    "power_on_minutes",
                    "power_off_minutes",
                }
            ),
            "event counters and durations",
        ),
        "event": (
            frozenset({"voltage", "current", "power", "transaction", "other", "non_rollover", "control"}),
            "last event code of an event group",
        ),
        "status": (frozenset({"profile"}), "status words"),
    }
)


def is_valid_source(source: str) -> bool:
    """True if ``source`` is ``<kind>:<name>`` from the vocabulary."""
    kind, sep, name = source.partition(":")
    entry = SOURCE_KINDS.get(kind)
    return bool(sep) and entry is not None and name in entry[0]


def describe_source(source: str) -> str:
    """Why a source is invalid (for error messages), or its meaning if it is valid."""
    kind, sep, name = source.partition(":")
    entry = SOURCE_KINDS.get(kind)
    if not sep or entry is None:
        return f"unknown source kind {kind!r}; kinds: {', '.join(SOURCE_KINDS)} (write '<kind>:<name>')"
    names, meaning = entry
    if name not in names:
        examples = ", ".join(sorted(names)[:8])
        return f"unknown {kind} source {name!r}; e.g. {examples}"
    return meaning


def source_names(kind: str) -> frozenset[str]:
    """The names allowed after ``<kind>:``."""
    return SOURCE_KINDS[kind][0]
