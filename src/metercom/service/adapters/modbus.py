"""Modbus meters for the head-end: :class:`ModbusMeterSession` over
:class:`~metercom.session.modbus.ModbusSession` and the meter's register profile.

Theory of operation:

* The meter's ``device_profile`` names its register map (``pzem004t``, ``pmtr3``); the unit
  is its address. Every request of the conversation runs through the line's one shared
  :class:`~metercom.session.bus.BusScheduler` (handed in by the factory), so the units of an
  RS-485 bus are served one request at a time, round-robin, with bounded retries.
* Framing: quirk ``framing`` (``rtu``/``tcp``), else Modbus TCP (MBAP) on ``tcp`` lines and RTU
  on serial lines, buses and converters (RTU tunnelled through a transparent converter).
* Registers: the profile's read blocks in one pass; readings are filtered by the plan
  (``C.D.E`` with any ``F``; A and B must match unless the plan gives ``1-0``) and stamped with
  the device's clock when the profile has one (pmtr3), else left to the collector (head-end time).
* Capabilities follow the profile: clock read/set and the event ring (pmtr3), the load relay
  (pmtr3 ``load_relay``), auxiliary outputs (the other relays: :meth:`set_output`) and rule
  slots for rules the meter evaluates itself (:meth:`sync_rule_slots`: read back, compare by
  CRC, write only what differs, read back again). Load profiles are not offered: no Modbus
  profile here keeps one.
* The link belongs to the scheduler's pool: :meth:`close` never closes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from metercom.errors import ConfigError, RemoteProtocolError
from metercom.model.modbus_profile import ModbusProfile, load_modbus_profile
from metercom.model.obis import Obis
from metercom.model.reading import Reading
from metercom.model.rules.slots import slot_crc
from metercom.service.config_model import LineKind, ModbusAddress, ReadPlan
from metercom.service.meters import (
    Capabilities,
    CollectedData,
    MeterContext,
    NotSupportedError,
    same_quantity,
)
from metercom.service.store import MeterEvent, ProfileRow
from metercom.session.bus import BusScheduler
from metercom.session.modbus import ModbusDevice, ModbusSession, RuleSlotStatus

__all__ = ["ModbusMeterSession"]


def _wanted(reading: Reading, objects: Sequence[Obis]) -> bool:
    if not objects:
        return True
    if reading.obis is None:
        return False
    return any(
        same_quantity(reading.obis, o) and (o.a, o.b) in ((reading.obis.a, reading.obis.b), (1, 0))
        for o in objects
    )


class ModbusMeterSession:
    """One conversation with one Modbus unit; see the module docstring."""

    def __init__(self, ctx: MeterContext, *, bus: BusScheduler | None = None) -> None:
        meter = ctx.meter
        address = meter.address
        if not isinstance(address, ModbusAddress):
            raise ConfigError(f"meter {meter.id}: a Modbus meter needs a unit address")
        if not meter.device_profile:
            raise ConfigError(f"meter {meter.id}: a Modbus meter needs a device_profile (pzem004t, pmtr3)")
        self.ctx = ctx
        self.profile: ModbusProfile = load_modbus_profile(meter.device_profile)
        framing = str(ctx.quirk("framing", "tcp" if ctx.line.kind is LineKind.TCP else "rtu"))
        if framing not in ("rtu", "tcp"):
            raise ConfigError(f"meter {meter.id}: quirk framing must be rtu or tcp, got {framing!r}")
        self.session = ModbusSession(
            ctx.transport,
            framing="tcp" if framing == "tcp" else "rtu",
            timeout_s=ctx.line.response_timeout_s,
            retries=int(ctx.quirk("retries", 2)),
            scheduler=bus,
        )
        self.device = ModbusDevice(self.session, address.unit, self.profile)
        relays = self.profile.relays
        self._load_relay = relays.load_relay if relays is not None else None
        self.capabilities = Capabilities(
            registers=True,
            profiles=False,
            events=self.profile.event_log is not None,
            read_clock=self.profile.clock is not None,
            set_clock=self.profile.clock is not None,
            relay=self._load_relay is not None,
        )

    @property
    def bus(self) -> BusScheduler:
        return self.session.scheduler

    async def _readings(self, objects: Sequence[Obis]) -> tuple[list[Reading], datetime | None]:
        raw = await self.device.read_raw()
        meter_time: datetime | None = None
        clock = self.profile.clock
        polled = next((n for n in (clock.mirror, clock.point) if n in raw), None) if clock else None
        if polled is not None:
            value = self.profile.point(polled).decode(raw[polled])
            if isinstance(value, datetime):
                meter_time = value.astimezone(UTC)
        readings = [r for r in self.profile.readings(raw) if _wanted(r, objects)]
        if meter_time is not None:
            readings = [
                r
                if r.captured_at is not None
                else Reading(r.obis, r.value, r.unit, meter_time, r.address, r.extra, r.raw)
                for r in readings
            ]
        return readings, meter_time

    async def read(self, plan: ReadPlan, *, since: Mapping[str, datetime], now: datetime) -> CollectedData:
        readings, meter_time = await self._readings(plan.objects)
        missing = [str(o) for o in plan.objects if not any(_wanted(r, [o]) for r in readings)]
        missing += [str(p.obis) for p in plan.profiles]
        events: dict[str, tuple[MeterEvent, ...]] = {}
        for item in plan.events:
            key = str(item.obis)
            if self.profile.event_log is None:
                missing.append(key)
                continue
            start = since.get(key, now - item.history)
            events[key] = tuple(e for e in await self._events(key) if start <= e.time <= now)
        return CollectedData(
            readings=tuple(readings),
            events=MappingProxyType(events),
            meter_time=meter_time,
            missing=tuple(missing),
        )

    async def _events(self, log_name: str) -> list[MeterEvent]:
        return [
            MeterEvent(
                e.time.astimezone(UTC),
                e.code,
                log_name,
                description=e.name,
                data={"seq": e.seq, "detail": e.detail},
            )
            for e in await self.device.read_events(0)
        ]

    async def read_objects(self, objects: Sequence[Obis]) -> list[Reading]:
        readings, _ = await self._readings(objects)
        return readings

    async def read_profile(self, obis: Obis, start: datetime, end: datetime) -> list[ProfileRow]:  # noqa: ARG002
        raise NotSupportedError(f"Modbus meters ({self.profile.name}): no load profiles")

    def _need(self, available: bool, what: str) -> None:
        if not available:
            raise NotSupportedError(f"Modbus profile {self.profile.name}: no {what}")

    async def read_clock(self) -> datetime:
        self._need(self.capabilities.read_clock, "clock")
        return (await self.device.read_clock()).astimezone(UTC)

    async def set_clock(self, when: datetime) -> None:
        self._need(self.capabilities.set_clock, "clock")
        await self.device.set_clock(when)

    async def read_relay(self) -> bool:
        self._need(self._load_relay is not None, "load relay")
        assert self._load_relay is not None  # noqa: S101 - checked above
        return (await self.device.read_relays())[self._load_relay - 1]

    async def _switch(self, closed: bool) -> None:
        self._need(self._load_relay is not None, "load relay")
        assert self._load_relay is not None  # noqa: S101 - checked above
        await self.device.set_relay(self._load_relay, closed)

    async def disconnect(self) -> None:
        await self._switch(False)

    # -- auxiliary outputs and rule slots (relay meters) ---------------------------------------

    def _output(self, output: int) -> int:
        relays = self.profile.relays
        self._need(relays is not None, "relays")
        assert relays is not None  # noqa: S101 - checked above
        if not 1 <= output <= relays.count or output == self._load_relay:
            raise NotSupportedError(
                f"Modbus profile {self.profile.name}: no auxiliary output {output} "
                f"(outputs 1..{relays.count}, {self._load_relay} is the supply relay)"
            )
        return output

    async def set_output(self, output: int, high: bool) -> None:
        """Switch auxiliary output ``output`` (a relay other than the supply): high = closed."""
        await self.device.set_relay(self._output(output), high)

    async def read_output(self, output: int) -> bool:
        return (await self.device.read_relays())[self._output(output) - 1]

    async def sync_rule_slots(self, images: Sequence[bytes]) -> dict[str, Any]:
        """Make the meter's rule slots hold ``images`` (slot 1 first; missing ones: empty).

        Idempotent: the slots' CRCs are read first (one request) and only slots that differ are
        written, each in one request and read back; then the status is read again to confirm.
        """
        relays = self.profile.relays
        spec = relays.rules if relays is not None else None
        self._need(spec is not None, "rule slots")
        assert spec is not None  # noqa: S101 - checked above
        if len(images) > spec.slots.count:
            raise NotSupportedError(
                f"Modbus profile {self.profile.name}: {len(images)} rule slots asked, "
                f"it has {spec.slots.count}"
            )
        wanted = [*images, *[b""] * (spec.slots.count - len(images))]
        before = await self.device.read_rule_status()
        written: list[int] = []
        cleared: list[int] = []
        unchanged: list[int] = []
        for status, image in zip(before, wanted, strict=True):
            slot = status.index + 1
            if status.crc == slot_crc(image):
                unchanged.append(slot)
                continue
            await self.device.write_rule_image(status.index, image)
            back = await self.device.read_rule_image(status.index)
            if back != image:
                raise RemoteProtocolError(
                    f"unit {self.device.unit} rule slot {slot} reads back {len(back)} bytes "
                    f"(CRC 0x{slot_crc(back):08X}) after writing {len(image)} (CRC 0x{slot_crc(image):08X})",
                    layer="modbus",
                )
            (written if image else cleared).append(slot)
        if written or cleared:
            after = await self.device.read_rule_status()
            wrong = [s.index + 1 for s, image in zip(after, wanted, strict=True) if s.crc != slot_crc(image)]
            if wrong:
                raise RemoteProtocolError(
                    f"unit {self.device.unit}: rule slots {wrong} do not hold the pushed rules",
                    layer="modbus",
                )
        return {"written": written, "cleared": cleared, "unchanged": unchanged, "confirmed": True}

    async def read_rule_slots(self) -> list[tuple[RuleSlotStatus, bytes]]:
        """What every rule slot holds: its status and image (``b""``: empty), slot 1 first.

        One request for the status of all slots, then one per non-empty slot for its image
        (length and CRC checked: :class:`~metercom.model.rules.slots.RuleSlotError` otherwise).
        """
        relays = self.profile.relays
        self._need(relays is not None and relays.rules is not None, "rule slots")
        out: list[tuple[RuleSlotStatus, bytes]] = []
        for status in await self.device.read_rule_status():
            image = await self.device.read_rule_image(status.index) if status.crc else b""
            out.append((status, image))
        return out

    async def reconnect(self) -> None:
        await self._switch(True)

    async def close(self) -> None:
        return None  # the link belongs to the scheduler's pool
