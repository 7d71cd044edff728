"""Protocol adapters of the head-end: DLMS/COSEM and Modbus sessions behind
:class:`~metercom.service.meters.MeterSession`, and the factory that builds them.

Rule: an adapter is the only place the head-end touches a protocol session
(:mod:`metercom.session`); what it hands back is protocol-neutral (readings, profile rows and
events with the meter's own time in UTC). State that must outlive one conversation lives in
:class:`MeterSessionFactory`, never in a session:

* one :class:`~metercom.session.bus.BusScheduler` per physical Modbus line, shared by every
  unit on it (rebuilt when the line's configuration changes);
* the DLMS invocation counters, kept durable in one
  :class:`~metercom.session.counters.FileCounterStore` per (client system title, meter) under
  ``<state_dir>/dlms-counters/`` (default ``$XDG_STATE_HOME/metercom``, i.e.
  ``~/.local/state/metercom``) and written once per ``counter_reserve`` frames (see
  :class:`.dlms.ReservingCounterStore`).

The IEC 62056-21 adapter stays in :mod:`metercom.service.meters`.

Usage::

    factory = MeterSessionFactory(state_dir=Path("/var/lib/metercom"))
    headend = HeadEnd(store, configs, session_factory=factory)
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from metercom.service.adapters.dlms import DlmsMeterSession, ReservingCounterStore
from metercom.service.adapters.modbus import ModbusMeterSession
from metercom.service.config_model import LineConfig
from metercom.service.config_model import Protocol as MeterProtocol
from metercom.service.meters import Iec21MeterSession, MeterContext, MeterSession, NotSupportedError
from metercom.session.bus import BusScheduler
from metercom.session.counters import FileCounterStore, default_counter_path

__all__ = [
    "DEFAULT_COUNTER_RESERVE",
    "DlmsMeterSession",
    "MeterSessionFactory",
    "ModbusMeterSession",
    "ReservingCounterStore",
    "default_factory",
]

#: Own invocation counters handed out per durable write (at most this many are skipped after a crash).
DEFAULT_COUNTER_RESERVE: Final = 64


class MeterSessionFactory:
    """A :data:`~metercom.service.meters.SessionFactory` with the state adapters share; see the
    module docstring. ``state_dir`` is where durable per-meter state (DLMS counters) lives."""

    def __init__(
        self, *, state_dir: str | Path | None = None, counter_reserve: int = DEFAULT_COUNTER_RESERVE
    ) -> None:
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.counter_reserve = counter_reserve
        self._buses: dict[str, tuple[LineConfig, BusScheduler]] = {}
        self._counters: dict[tuple[str, bytes], ReservingCounterStore] = {}

    def bus_for(self, line: LineConfig) -> BusScheduler:
        """The one bus scheduler of a physical line (a new one when the line's settings changed)."""
        kept = self._buses.get(line.id)
        if kept is not None and kept[0] == line:
            return kept[1]
        bus = BusScheduler(
            f"modbus {line.id}",
            timeout_s=2 * line.response_timeout_s + 1.0,
            retries=2,
            gap_after_failure_s=0.0,
        )
        self._buses[line.id] = (line, bus)
        return bus

    def counter_path(self, meter_id: str, system_title: bytes) -> Path:
        default = default_counter_path(system_title, meter_id)
        if self.state_dir is None:
            return default
        return self.state_dir / "dlms-counters" / default.name

    def counters_for(self, meter_id: str, system_title: bytes) -> ReservingCounterStore:
        """The durable invocation counters of our association with ``meter_id``."""
        key = (meter_id, system_title)
        store = self._counters.get(key)
        if store is None:
            inner = FileCounterStore(self.counter_path(meter_id, system_title))
            store = self._counters[key] = ReservingCounterStore(inner, reserve=self.counter_reserve)
        return store

    async def __call__(self, ctx: MeterContext) -> MeterSession:
        protocol = ctx.meter.protocol
        if protocol is MeterProtocol.IEC21:
            return Iec21MeterSession(ctx)
        if protocol is MeterProtocol.DLMS:
            return await DlmsMeterSession.open(ctx, counters=self.counters_for)
        if protocol is MeterProtocol.MODBUS:
            return ModbusMeterSession(ctx, bus=self.bus_for(ctx.line))
        raise NotSupportedError(f"meter {ctx.meter.id}: no head-end adapter for protocol {protocol.value}")


_default: MeterSessionFactory | None = None


def default_factory() -> MeterSessionFactory:
    """The process-wide factory :func:`~metercom.service.meters.open_meter_session` uses."""
    global _default  # noqa: PLW0603 - one shared factory per process, created on first use
    if _default is None:
        _default = MeterSessionFactory()
    return _default
