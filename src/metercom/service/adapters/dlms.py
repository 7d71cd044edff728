"""DLMS/COSEM meters for the head-end: :class:`DlmsMeterSession` over
:class:`~metercom.session.dlms.DlmsClient`.

Theory of operation:

* One session is one association: :meth:`DlmsMeterSession.open` connects over the link the
  scheduler lent (HDLC on serial lines, buses and converters; the IP wrapper on TCP and UDP;
  quirk ``link`` = ``wrapper``/``hdlc``/``iec21+hdlc`` overrides), associates with the meter's
  configured mechanism and keys, and :meth:`close` releases it. The link is never closed here.
* Registers: one get-request-with-list for the plan's objects (scalers read in the same
  requests, once per session) plus the Clock. A value is captured at the meter's clock read
  in that request, or at its own time (Extended register ``capture_time``, attribute 5).
  Objects the meter refuses are reported as ``missing``, not as a failure.
* Profiles and event logs: selective access by time range ``[since, now]`` on the clock
  column; rows carry the meter's own time stamps converted to UTC with the deviation the meter
  sent (``timezone`` of the meter when it sends none). A row without a usable time stamp takes
  the previous row's time plus the capture period (attribute 4, read only then), or is dropped.
* Event logs (Profile generic ``0.0.99.98.x.255``): each row becomes a
  :class:`~metercom.service.store.MeterEvent`; the code is the event-code column
  (``0.0.96.11.x.255``), else the first integer column.
* Relay: Disconnect control ``0.0.96.3.10.255`` (class 70): ``output_state`` read back,
  ``remote_disconnect``/``remote_reconnect`` (quirk ``disconnect_control`` names another object).

Secrets: ``password`` (LLS or the HLS secret) and ``keys`` (``encryption``, ``authentication``
as hex) are resolved when the session is built and handed to the client only. Our own system
title is the quirk ``system_title`` (16 hex digits or 8 characters), default ``MTCHE001``.
Invocation counters: :class:`ReservingCounterStore` (see :mod:`metercom.service.adapters`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Final

from metercom.errors import ConfigError, DeviceRejectedError, MetercomError
from metercom.model.cosem import ControlState, Quantity
from metercom.model.dlms_data import CosemDateTime, DlmsValueError
from metercom.model.obis import Obis
from metercom.model.reading import Reading, ReadingValue
from metercom.model.units import Unit
from metercom.service.config_model import DlmsAddress, ReadPlan
from metercom.service.meters import Capabilities, CollectedData, MeterContext, NotSupportedError
from metercom.service.store import MeterEvent, ProfileRow
from metercom.session.counters import FileCounterStore
from metercom.session.dlms import DlmsClient, DlmsKeys, ProfileReadout

__all__ = ["DlmsMeterSession", "ReservingCounterStore"]

log = logging.getLogger(__name__)

CLOCK: Final = Obis(0, 0, 1, 0, 0, 255)
DISCONNECT_CONTROL: Final = Obis(0, 0, 96, 3, 10, 255)
DEFAULT_SYSTEM_TITLE: Final = b"MTCHE001"
_OWN: Final = "own"  # the codec's name of our own invocation counter
#: Configuration mechanism names -> DlmsClient ``auth`` names.
_AUTH: Final = {"none": "none", "low": "low", "high-gmac": "hls-gmac", "high-sha256": "hls-sha256"}
_LINKS: Final = ("wrapper", "hdlc", "iec21+hdlc")


class ReservingCounterStore:
    """A durable counter store written once per ``reserve`` own invocation counters.

    The codec saves a *ceiling* (every own counter below it may be on the wire) before it uses a
    counter. In memory the exact ceiling is kept, so the next association continues right after
    the last counter used; on disk the ceiling plus ``reserve`` is written whenever the exact one
    passes what is on disk, so a restart resumes above every counter that may have been sent
    (at most ``reserve`` values are skipped). Peer counters (replay protection of the meter's
    frames) are kept in memory and written with the next own write or :meth:`flush` (end of each
    session); a crash may forget the newest, so a replay of frames of that last session would not
    be detected, never a reuse of our own counters.
    """

    def __init__(self, inner: FileCounterStore, *, reserve: int = 64) -> None:
        if reserve < 1:
            raise ConfigError(f"counter reserve must be at least 1, got {reserve}")
        self.inner = inner
        self.reserve = reserve
        self._memory: dict[str, int] = {}
        self._dirty: dict[str, int] = {}
        #: Durable writes done (for tests and diagnostics).
        self.writes = 0

    def load(self, name: str) -> int | None:
        if name in self._memory:
            return self._memory[name]
        return self.inner.load(name)

    def save(self, name: str, value: int) -> None:
        self._memory[name] = value
        if name != _OWN:
            self._dirty[name] = value
            return
        durable = self.inner.load(_OWN)
        if durable is None or value > durable:
            for peer, peer_value in self._dirty.items():
                self.inner.save(peer, peer_value)
            self._dirty.clear()
            self.inner.save(_OWN, value + self.reserve)
            self.writes += 1

    def flush(self) -> None:
        """Write peer counters kept only in memory."""
        for name, value in self._dirty.items():
            self.inner.save(name, value)
            self.writes += 1
        self._dirty.clear()


CounterSource = Callable[[str, bytes], ReservingCounterStore]


def _key_bytes(text: str | None, name: str, meter_id: str) -> bytes:
    if text is None:
        raise ConfigError(f"meter {meter_id}: key {name!r} is needed for this security setting")
    try:
        value = bytes.fromhex(text.strip())
    except ValueError:
        raise ConfigError(f"meter {meter_id}: key {name!r} is not hex") from None
    if len(value) != 16:
        raise ConfigError(f"meter {meter_id}: key {name!r} must be 16 bytes, got {len(value)}")
    return value


def _system_title(ctx: MeterContext) -> bytes:
    text = str(ctx.quirk("system_title", ""))
    if not text:
        return DEFAULT_SYSTEM_TITLE
    if len(text) == 16:
        with contextlib.suppress(ValueError):
            return bytes.fromhex(text)
    if len(text) == 8:
        return text.encode("ascii", "replace")
    raise ConfigError(f"meter {ctx.meter.id}: quirk system_title must be 16 hex digits or 8 characters")


def _value(value: object) -> ReadingValue:
    if value is None or isinstance(value, Decimal | str | bytes | bool):
        return value
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo is not None else str(value)
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    return str(value)


def _reading(obis: Obis, value: object, captured_at: datetime | None) -> Reading:
    if isinstance(value, Quantity):
        unit = value.symbol if value.unit != Unit.COUNT else None
        return Reading(obis, value.value, unit, captured_at=captured_at)
    return Reading(obis, _value(value), captured_at=captured_at)


class DlmsMeterSession:
    """One association with one DLMS meter; see the module docstring. Build it with :meth:`open`."""

    capabilities = Capabilities(
        registers=True, profiles=True, events=True, read_clock=True, set_clock=True, relay=True
    )

    def __init__(self, ctx: MeterContext, client: DlmsClient, stack: contextlib.AsyncExitStack) -> None:
        self.ctx = ctx
        self.client = client
        self._stack = stack
        self._periods: dict[Obis, timedelta | None] = {}
        relay = ctx.quirk("disconnect_control", "")
        self._relay = Obis.parse(str(relay)) if relay else DISCONNECT_CONTROL

    @classmethod
    async def open(cls, ctx: MeterContext, *, counters: CounterSource | None = None) -> DlmsMeterSession:
        """Connect and associate over ``ctx.transport`` (see the module docstring)."""
        meter = ctx.meter
        address = meter.address
        if not isinstance(address, DlmsAddress):
            raise ConfigError(f"meter {meter.id}: a DLMS meter needs client and server addresses")
        mechanism = (meter.authentication or "none").lower()
        auth = _AUTH.get(mechanism)
        if auth is None:
            raise NotSupportedError(
                f"meter {meter.id}: authentication {mechanism!r} is not supported by the DLMS client "
                f"(supported: {', '.join(_AUTH)})"
            )
        security = (meter.security or "none").lower()
        ciphered = security != "none"
        keys: DlmsKeys | None = None
        counter_store: ReservingCounterStore | None = None
        if ciphered or auth == "hls-gmac" or meter.keys:
            title = _system_title(ctx)
            keys = DlmsKeys(
                encryption_key=_key_bytes(ctx.secret("encryption"), "encryption", meter.id),
                authentication_key=_key_bytes(ctx.secret("authentication"), "authentication", meter.id),
                system_title=title,
            )
            if counters is not None:
                counter_store = counters(meter.id, title)
        link = str(ctx.quirk("link", "")) or ("hdlc" if ctx.line.kind.is_serial else "wrapper")
        if link not in _LINKS:
            raise ConfigError(
                f"meter {meter.id}: quirk link must be one of {', '.join(_LINKS)}, got {link!r}"
            )
        if address.server is not None:
            server, physical = address.server, None
        else:
            server, physical = address.logical, address.physical
        baud_max = ctx.quirk("baud_max", 9600)
        stack = contextlib.AsyncExitStack()
        if counter_store is not None:
            stack.callback(counter_store.flush)
        try:
            client = await stack.enter_async_context(
                DlmsClient.connect(
                    ctx.transport,
                    client=address.client,
                    server=server,
                    physical=physical,
                    auth=auth,
                    password=ctx.secret() if auth in ("low", "hls-sha256") else None,
                    keys=keys,
                    counter_store=counter_store,
                    ciphered=ciphered if keys is not None else False,
                    timeout_s=ctx.line.response_timeout_s,
                    retries=int(ctx.quirk("retries", 1)),
                    link=link,
                    max_pdu_size=int(ctx.quirk("max_pdu", 0xFFFF)),
                    hdlc_timeout_s=min(ctx.line.response_timeout_s, 3.0),
                    baud_max=int(baud_max) if baud_max else None,
                    connect_timeout_s=ctx.line.connect_timeout_s,
                    tz=ctx.tz,
                )
            )
        except BaseException:
            await stack.aclose()
            raise
        return cls(ctx, client, stack)

    # -- reading ---------------------------------------------------------------------------------

    async def read(self, plan: ReadPlan, *, since: Mapping[str, datetime], now: datetime) -> CollectedData:
        readings, meter_time, missing = await self._registers(plan.objects)
        profiles: dict[str, tuple[ProfileRow, ...]] = {}
        events: dict[str, tuple[MeterEvent, ...]] = {}
        for item in plan.profiles:
            key = str(item.obis)
            start = since.get(key, now - item.history)
            try:
                profiles[key] = tuple(await self.read_profile(item.obis, start, now))
            except DeviceRejectedError as exc:
                log.info("meter %s: profile %s refused: %s", self.ctx.meter.id, key, exc)
                missing.append(key)
        for item in plan.events:
            key = str(item.obis)
            start = since.get(key, now - item.history)
            try:
                events[key] = tuple(await self.read_events(item.obis, start, now))
            except DeviceRejectedError as exc:
                log.info("meter %s: event log %s refused: %s", self.ctx.meter.id, key, exc)
                missing.append(key)
        return CollectedData(
            readings=tuple(readings),
            profile_rows=MappingProxyType(profiles),
            events=MappingProxyType(events),
            meter_time=meter_time,
            missing=tuple(missing),
        )

    async def _registers(self, objects: Sequence[Obis]) -> tuple[list[Reading], datetime | None, list[str]]:
        """Registers and the meter's clock in one get-request-with-list."""
        wanted = [o for o in objects if o != CLOCK]
        own_time = [o for o in wanted if self.client.class_id_of(o) == 4]
        targets = [
            *(self.client.descriptor(o) for o in wanted),
            self.client.descriptor(CLOCK, 2, 8),
            *(self.client.descriptor(o, 5, 4) for o in own_time),
        ]
        values = await self.client.get_many(targets, return_errors=True)
        clock_value = values[len(wanted)]
        meter_time = clock_value.astimezone(UTC) if isinstance(clock_value, datetime) else None
        stamps = dict(zip(own_time, values[len(wanted) + 1 :], strict=True))
        readings: list[Reading] = []
        missing: list[str] = []
        for obis, value in zip(wanted, values[: len(wanted)], strict=True):
            if isinstance(value, MetercomError):
                missing.append(str(obis))
                continue
            captured = self._own_time(stamps.get(obis)) or meter_time
            readings.append(_reading(obis, value, captured))
        if CLOCK in objects and meter_time is not None:
            readings.append(Reading(CLOCK, meter_time, captured_at=meter_time))
        return readings, meter_time, missing

    def _own_time(self, value: object) -> datetime | None:
        """An Extended register's ``capture_time`` (date-time or 12-byte octet string), UTC."""
        if isinstance(value, bytes) and len(value) == 12:
            try:
                value = CosemDateTime.from_bytes(value).to_datetime(default_tz=self.ctx.tz)
            except (DlmsValueError, ValueError):
                return None
        if isinstance(value, datetime) and value.tzinfo is not None:
            return value.astimezone(UTC)
        return None

    async def read_objects(self, objects: Sequence[Obis]) -> list[Reading]:
        if not objects:
            raise NotSupportedError("DLMS meters: name the objects to read (there is no readout)")
        readings, _, missing = await self._registers(objects)
        if missing and not readings:
            raise DeviceRejectedError(f"the meter refused every object asked for: {', '.join(missing)}")
        return readings

    async def _readout(self, obis: Obis, start: datetime, end: datetime) -> ProfileReadout:
        return await self.client.read_profile(obis, start=start, end=end)

    async def _period(self, obis: Obis) -> timedelta | None:
        if obis not in self._periods:
            try:
                seconds = await self.client.get(obis, 4, 7)
            except DeviceRejectedError:
                seconds = 0
            self._periods[obis] = (
                timedelta(seconds=seconds) if isinstance(seconds, int) and seconds > 0 else None
            )
        return self._periods[obis]

    async def _stamped(
        self, obis: Obis, readout: ProfileReadout
    ) -> list[tuple[datetime, tuple[object, ...]]]:
        """Rows with their UTC time stamp; rows without one are dated from the previous row."""
        clock = next((i for i, c in enumerate(readout.columns) if c.capture_object.is_clock_time), None)
        if clock is None:
            raise NotSupportedError(f"profile {obis} has no clock column; it cannot be read by time")
        out: list[tuple[datetime, tuple[object, ...]]] = []
        previous: datetime | None = None
        for row in readout.rows:
            stamp = row[clock]
            if isinstance(stamp, datetime) and stamp.tzinfo is not None:
                when = stamp.astimezone(UTC)
            else:
                period = await self._period(obis) if previous is not None else None
                if previous is None or period is None:
                    log.warning("meter %s: %s row without a usable time dropped", self.ctx.meter.id, obis)
                    continue
                when = previous + period
            out.append((when, row))
            previous = when
        return out

    async def read_profile(self, obis: Obis, start: datetime, end: datetime) -> list[ProfileRow]:
        readout = await self._readout(obis, start, end)
        names = readout.names
        units = {c.name: c.unit for c in readout.columns if c.unit is not None}
        clock = next(i for i, c in enumerate(readout.columns) if c.capture_object.is_clock_time)
        shared_units = MappingProxyType(units)  # read-only, so every row can carry the one view
        rows: list[ProfileRow] = []
        for when, row in await self._stamped(obis, readout):
            values = {names[i]: _value(cell) for i, cell in enumerate(row) if i != clock}
            rows.append(ProfileRow(when, MappingProxyType(values), units=shared_units))
        return rows

    async def read_events(self, obis: Obis, start: datetime, end: datetime) -> list[MeterEvent]:
        """Entries of an event log (a Profile generic) captured in ``start``..``end``."""
        readout = await self._readout(obis, start, end)
        columns = readout.columns
        clock = next(i for i, c in enumerate(columns) if c.capture_object.is_clock_time)
        code_column = next(
            (
                i
                for i, c in enumerate(columns)
                if (c.capture_object.logical_name.c, c.capture_object.logical_name.d) == (96, 11)
            ),
            None,
        )
        out: list[MeterEvent] = []
        for when, row in await self._stamped(obis, readout):
            index = code_column
            if index is None:
                index = next(
                    (
                        i
                        for i, v in enumerate(row)
                        if i != clock and isinstance(v, int) and not isinstance(v, bool)
                    ),
                    None,
                )
            code = row[index] if index is not None else None
            if not isinstance(code, int):
                continue
            data = {
                readout.names[i]: str(_value(v)) if not isinstance(v, bool | int) else v
                for i, v in enumerate(row)
                if i not in (clock, index) and v is not None
            }
            out.append(MeterEvent(when, int(code), str(obis), data=data))
        return out

    # -- clock and relay -------------------------------------------------------------------------

    async def read_clock(self) -> datetime:
        return (await self.client.read_clock()).astimezone(UTC)

    async def set_clock(self, when: datetime) -> None:
        wall = (when + timedelta(microseconds=500_000)).replace(microsecond=0)
        await self.client.set_clock(wall.astimezone(self.ctx.tz))

    async def read_relay(self) -> bool:
        value = await self.client.get(self._relay, 2, 70)
        return bool(value)

    async def disconnect(self) -> None:
        state = await self.client.disconnect(self._relay)
        log.info("meter %s: disconnect: control state %s", self.ctx.meter.id, ControlState(state).name)

    async def reconnect(self) -> None:
        state = await self.client.reconnect(self._relay)
        log.info("meter %s: reconnect: control state %s", self.ctx.meter.id, ControlState(state).name)

    async def close(self) -> None:
        try:
            await self._stack.aclose()
        except MetercomError as exc:  # closing never raises: the conversation is over either way
            log.debug("meter %s: closing the association: %s: %s", self.ctx.meter.id, type(exc).__name__, exc)
