"""``metercom rules slots METER``: what the rule slots of a relay meter hold.

Rule: read-only and over the meter's configured link. The rule slots of a meter that evaluates
rules itself (a pmtr3; ``evaluate = "meter"`` in docs/rules.md) are read with the Modbus
adapter's :meth:`~metercom.service.adapters.modbus.ModbusMeterSession.read_rule_slots` (one
request for the status of all slots, one per non-empty slot for its image, length and CRC
checked) and each image is decoded with :func:`metercom.model.rules.slots.parse_image`, so what
is shown is what the meter runs, whoever wrote it. A slot whose image does not decode is shown
as such, with its CRC, instead of failing the whole listing.

The link is opened for this one conversation: on a serial line or bus a running ``metercom
serve`` may hold it, so the command may wait for or collide with the service's conversations
there; on TCP it is one more connection to the meter or gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from metercom.errors import InputError, MetercomError
from metercom.model.rules.slots import parse_image, relay_outputs
from metercom.service.adapters import MeterSessionFactory
from metercom.service.adapters.modbus import ModbusMeterSession
from metercom.service.config_automation import meter_outputs, rule_slot_spec
from metercom.service.config_model import FleetConfig, MeterConfig
from metercom.service.config_validate import load_config
from metercom.service.cron import format_duration
from metercom.service.meters import MeterContext
from metercom.session.modbus import RuleSlotStatus
from metercom.transport.url import open_transport

__all__ = ["SlotView", "read_slots", "register_rules"]

_SubParsers = Any
_RESULTS = {0: "false", 1: "true", 2: "undecided", 3: "idle"}
_HEADERS = (
    "slot",
    "enabled",
    "rule",
    "expression",
    "window",
    "recovery",
    "action",
    "targets",
    "dry run",
    "state",
    "triggered",
    "last change",
)


@dataclass(frozen=True, slots=True)
class SlotView:
    """One rule slot: its status registers and the rule decoded from its image."""

    slot: int
    empty: bool
    name: str = ""
    expression: str = ""
    window: timedelta = timedelta(0)
    recovery: timedelta = timedelta(0)
    action: str = ""
    targets: tuple[str, ...] = ()
    enabled: bool = False
    dry_run: bool = False
    #: ``triggered`` or ``normal`` (the meter's state register).
    state: str = "normal"
    #: The last evaluation: ``false``, ``true``, ``undecided`` or ``idle``.
    result: str = "idle"
    triggered_count: int = 0
    changed_at: datetime | None = None
    crc: int = 0
    #: Why the image could not be decoded (then the rule fields are empty).
    error: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "slot": self.slot,
            "empty": self.empty,
            "name": self.name,
            "expression": self.expression,
            "window_s": self.window.total_seconds(),
            "recovery_s": self.recovery.total_seconds(),
            "action": self.action,
            "targets": list(self.targets),
            "enabled": self.enabled,
            "dry_run": self.dry_run,
            "state": self.state,
            "result": self.result,
            "triggered_count": self.triggered_count,
            "changed_at": self.changed_at.isoformat() if self.changed_at else None,
            "crc": f"0x{self.crc:08X}",
            "error": self.error or None,
        }


def _view(status: RuleSlotStatus, image: bytes, outputs: dict[str, int]) -> SlotView:
    common: dict[str, Any] = {
        "slot": status.index + 1,
        "empty": not image,
        "state": "triggered" if status.state == 1 else "normal",
        "result": _RESULTS.get(status.result, str(status.result)),
        "triggered_count": status.triggered_count,
        "changed_at": datetime.fromtimestamp(status.changed_at, UTC) if status.changed_at else None,
        "crc": status.crc,
    }
    if not image:
        return SlotView(**common)
    try:
        rule = parse_image(image, outputs)
    except MetercomError as exc:
        return SlotView(**common, error=str(exc))
    return SlotView(
        **common,
        name=rule.name,
        expression=rule.expression.to_text(),
        window=rule.window,
        recovery=rule.recovery,
        action=rule.action.value,
        targets=rule.targets,
        enabled=rule.enabled,
        dry_run=rule.dry_run,
    )


def _meter(config: FleetConfig, meter_id: str) -> MeterConfig:
    try:
        return config.meter(meter_id)
    except KeyError:
        known = ", ".join(sorted(m.id for m in config.meters)) or "none"
        raise InputError(f"no meter {meter_id!r} in the configuration; meters: {known}") from None


async def read_slots(
    config: FleetConfig,
    meter_id: str,
    *,
    factory: MeterSessionFactory | None = None,
    env: dict[str, str] | None = None,
) -> list[SlotView]:
    """Read and decode every rule slot of ``meter_id`` over its configured link."""
    meter = _meter(config, meter_id)
    if rule_slot_spec(meter) is None:
        raise InputError(
            f"meter {meter_id!r} ({meter.device_profile or meter.protocol.value}) has no rule slots: "
            "only relay meters that evaluate rules themselves (pmtr3) have them"
        )
    line = config.line(meter.line)
    transport = await open_transport(line.url, line=line.settings, connect_timeout_s=line.connect_timeout_s)
    try:
        ctx = MeterContext(meter, line, config, transport, env=env)
        session = await (factory or MeterSessionFactory())(ctx)
        try:
            if not isinstance(session, ModbusMeterSession):
                raise InputError(f"meter {meter_id!r}: no Modbus session for its rule slots")
            slots = await session.read_rule_slots()
        finally:
            await session.close()
    finally:
        await transport.close()
    outputs = relay_outputs(meter_outputs(meter))
    return [_view(status, image, outputs) for status, image in slots]


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "-"


def render_slots(meter_id: str, views: Sequence[SlotView], out: TextIO) -> None:
    from metercom.cli.output import render_table

    rows: list[Sequence[object]] = []
    for v in views:
        status = (v.state, v.triggered_count, _when(v.changed_at))
        if v.empty or v.error:
            # No rule to show: the slot's number, what is wrong with it, and its status.
            name = "(empty)" if v.empty else f"(undecodable, CRC 0x{v.crc:08X})"
            rows.append((v.slot, "", name, "" if v.empty else v.error, "", "", "", "", "", *status))
            continue
        rows.append(
            (
                v.slot,
                "yes" if v.enabled else "no",
                v.name,
                v.expression,
                format_duration(v.window),
                format_duration(v.recovery),
                v.action,
                ",".join(v.targets),
                "yes" if v.dry_run else "no",
                *status,
            )
        )
    print(f"rule slots of meter {meter_id}", file=out)
    print(render_table(_HEADERS, rows), file=out)
    print("times in UTC, by the meter's clock", file=out)


def register_rules(subparsers: _SubParsers) -> None:
    """Add ``metercom rules slots METER --config FILE``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "rules",
        help="rules: what a relay meter's rule slots hold",
        description="Inspect rules that relay meters evaluate themselves.",
    )
    actions = parser.add_subparsers(dest="rules_action", metavar="ACTION", required=True)
    slots = actions.add_parser(
        "slots",
        help="read a relay meter's rule slots over its configured link",
        description=(
            "Read the status and image of every rule slot of a relay meter (pmtr3) over the link "
            "the configuration gives it, and show the rules decoded from the images."
        ),
    )
    slots.add_argument("meter", metavar="METER", help="the meter's id in the configuration")
    slots.add_argument(
        "--config", required=True, type=Path, metavar="FILE", help="fleet configuration (TOML)"
    )
    slots.add_argument("--json", action="store_true", help="print JSON")
    slots.set_defaults(handler=_slots_command)


def _slots_command(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    views = asyncio.run(read_slots(config, args.meter))
    if args.json:
        json.dump({"meter": args.meter, "slots": [v.to_json() for v in views]}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        render_slots(args.meter, views, sys.stdout)
    return 0
