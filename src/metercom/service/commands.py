"""Commands: read now, recover a period, time sync, disconnect and reconnect, at most once.

Rule (DESIGN.md section 6): a command is recorded in the store before it runs
(:meth:`~metercom.service.store.Store.request_command`, with the caller's idempotency key),
executed at most once (only the caller that moves it from ``requested`` to ``running`` runs
it: :meth:`~metercom.service.store.Store.start_command` is atomic), confirmed by reading back
what it changed, and audited with who asked, when, and the result. Asking again with the same
idempotency key returns the stored command: its result once it finished, without running it
again.

Theory of operation: :meth:`CommandExecutor.command` records the command, starts it, and runs
its conversation through the :class:`~metercom.service.scheduler.ConversationScheduler` at
on-demand priority, so it overtakes queued scheduled reads on the meter's line. The outcome is
stored with :meth:`~metercom.service.store.Store.finish_command`; errors become a failed
command (its ``error`` says what happened), never an exception to the caller, except for
requests that are wrong before anything runs (unknown kind, bad arguments, unknown meter).

Kinds and their arguments:

* ``read``: ``{"objects": ["1.8.0", ...]}`` (empty: everything the meter gives). Readings are
  stored like collected ones; the result lists them.
* ``recover``: ``{"profile": "1-0:99.1.0*255", "start": iso, "end": iso}`` re-reads a period of a
  profile with selective access, in pieces of at most a day (:func:`.gaps.read_range`, the
  reader gap recovery uses), and stores the rows.
* ``time_sync``: ``{"threshold_s": 10}``. Reads the meter's clock; only when
  ``|meter - head-end| > threshold_s`` sets it to the head-end's time, then reads it back and
  fails unless the skew is now within the threshold.
* ``disconnect`` / ``reconnect``: ``{"reason": "..."}`` (optional, audited). Operate the supply
  relay, then read its state back and fail unless it is open (disconnect) or closed (reconnect).
* ``set_output``: ``{"output": 2, "level": "high", "reason": "..."}``. Switch an auxiliary
  output of a relay meter (a pmtr3's relay 2..4), then read it back and fail unless it is at
  the level asked for.
* ``push_rules``: ``{"slots": [{"slot": 1, "rule": "over-voltage", "image": "4d53..."}, ...]}``:
  the images of every rule slot of a meter that evaluates rules itself (an empty image clears
  the slot; ``docs/rules.md``). The meter's slots are read back first and only slots that differ
  are written, each read back after writing; the result lists ``written``, ``cleared`` and
  ``unchanged`` slots, so pushing the same rules twice writes once.
* ``top_up``: ``{"account_id": "acc-42", "amount_minor": 1000, "key": "UPI-8731"}``. Credits a
  prepaid account through :attr:`CommandExecutor.top_up_handler` (the head-end's automation; no
  conversation with the meter); ``key`` (default: the idempotency key) is the payment's key in
  the ledger, so the credit is applied once even if the command is run again after a restart.

After a restart, :meth:`CommandExecutor.resume` marks commands that were ``running`` when the
process died as failed (their outcome is unknown; they are never run twice) and runs those
still ``requested``. A ``top_up`` that was running is finished instead: crediting is idempotent
by its key, so running its handler again applies the credit at most once.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, Protocol, runtime_checkable

from metercom.clock import Clock, current_clock
from metercom.errors import InputError, MetercomError
from metercom.model.obis import Obis
from metercom.service.collector import Collector
from metercom.service.gaps import read_range
from metercom.service.meters import MeterSession, NotSupportedError
from metercom.service.scheduler import ConversationScheduler, Priority
from metercom.service.store import CommandRecord, CommandState, CommandStateError, Marker, Store

__all__ = ["DEFAULT_TIME_SYNC_THRESHOLD_S", "CommandExecutor", "CommandFailed", "CommandKind"]

log = logging.getLogger(__name__)

#: Skew below which a time sync leaves the meter's clock alone.
DEFAULT_TIME_SYNC_THRESHOLD_S: Final = 10.0


class CommandKind(enum.StrEnum):
    READ = "read"
    RECOVER = "recover"
    TIME_SYNC = "time_sync"
    DISCONNECT = "disconnect"
    RECONNECT = "reconnect"
    TOP_UP = "top_up"
    SET_OUTPUT = "set_output"
    PUSH_RULES = "push_rules"


class CommandFailed(MetercomError):
    """A command ran but its read-back did not confirm it."""


@runtime_checkable
class OutputSession(Protocol):
    """A meter session that switches auxiliary outputs (a Modbus relay meter's relays 2..)."""

    async def set_output(self, output: int, high: bool) -> None: ...

    async def read_output(self, output: int) -> bool: ...


@runtime_checkable
class RuleSlotSession(Protocol):
    """A meter session that holds rules the meter evaluates itself (a pmtr3's rule slots)."""

    async def sync_rule_slots(self, images: Sequence[bytes]) -> dict[str, Any]: ...


def _parse_time(value: object, name: str) -> datetime:
    if not isinstance(value, str):
        raise InputError(f"argument {name!r} must be an ISO 8601 time, got {value!r}")
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InputError(f"argument {name!r}: not an ISO 8601 time: {value!r}") from exc
    if when.tzinfo is None:
        raise InputError(f"argument {name!r} needs a time zone: {value!r}")
    return when


def _check_args(kind: CommandKind, args: Mapping[str, Any]) -> None:
    """Refuse unusable arguments before the command is recorded."""
    allowed = {
        CommandKind.READ: {"objects"},
        CommandKind.RECOVER: {"profile", "start", "end"},
        CommandKind.TIME_SYNC: {"threshold_s"},
        CommandKind.DISCONNECT: {"reason"},
        CommandKind.RECONNECT: {"reason"},
        CommandKind.TOP_UP: {"account_id", "amount_minor", "key"},
        CommandKind.SET_OUTPUT: {"output", "level", "reason"},
        CommandKind.PUSH_RULES: {"slots", "reason"},
    }[kind]
    unknown = set(args) - allowed
    if unknown:
        raise InputError(
            f"command {kind.value}: unknown arguments {sorted(unknown)}; allowed: {sorted(allowed)}"
        )
    if kind is CommandKind.READ:
        objects = args.get("objects", [])
        if not isinstance(objects, list) or not all(isinstance(o, str) for o in objects):
            raise InputError("command read: 'objects' is a list of OBIS codes")
        for obj in objects:
            Obis.parse(obj)
    elif kind is CommandKind.RECOVER:
        if not isinstance(args.get("profile"), str):
            raise InputError("command recover: 'profile' (an OBIS code) is required")
        Obis.parse(args["profile"])
        if _parse_time(args.get("start"), "start") > _parse_time(args.get("end"), "end"):
            raise InputError("command recover: 'start' is after 'end'")
    elif kind is CommandKind.TOP_UP:
        amount = args.get("amount_minor")
        if not isinstance(args.get("account_id"), str) or not args["account_id"]:
            raise InputError("command top_up: 'account_id' is required")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            raise InputError(f"command top_up: 'amount_minor' must be a positive integer, got {amount!r}")
    elif kind is CommandKind.SET_OUTPUT:
        output = args.get("output")
        if not isinstance(output, int) or isinstance(output, bool) or not 1 <= output <= 16:
            raise InputError(f"command set_output: 'output' is a relay number 1..16, got {output!r}")
        if args.get("level") not in ("high", "low"):
            raise InputError(f"command set_output: 'level' is high or low, got {args.get('level')!r}")
    elif kind is CommandKind.PUSH_RULES:
        _rule_images(args)
    elif kind in (CommandKind.DISCONNECT, CommandKind.RECONNECT) and "reason" in args:
        if not isinstance(args["reason"], str) or len(args["reason"]) > 500:
            raise InputError(f"command {kind.value}: 'reason' is text of at most 500 characters")
    elif kind is CommandKind.TIME_SYNC and "threshold_s" in args:
        threshold = args["threshold_s"]
        if not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or threshold < 0:
            raise InputError(f"command time_sync: 'threshold_s' must be a number >= 0, got {threshold!r}")


def _set_output(output: int, high: bool) -> Callable[[MeterSession], Awaitable[dict[str, Any]]]:
    async def switch(session: MeterSession) -> dict[str, Any]:
        if not isinstance(session, OutputSession):
            raise NotSupportedError(f"set_output: this meter has no auxiliary outputs (output {output})")
        await session.set_output(output, high)
        state = await session.read_output(output)
        if state != high:
            want, got = ("high", "low") if high else ("low", "high")
            raise CommandFailed(f"set_output: output {output} reads back {got}, expected {want}")
        return {"output": output, "level": "high" if high else "low", "confirmed": True}

    return switch


def _rule_images(args: Mapping[str, Any]) -> list[bytes]:
    """``push_rules`` slots (``[{"slot": 1, "image": "4d53...", "rule": "name"}, ...]``) as images."""
    slots = args.get("slots")
    if not isinstance(slots, list) or not 1 <= len(slots) <= 255:
        raise InputError("command push_rules: 'slots' is a list of {slot, image, rule}, one per rule slot")
    images: list[bytes] = []
    for i, item in enumerate(slots, start=1):
        if not isinstance(item, dict) or item.get("slot") != i or not isinstance(item.get("image"), str):
            raise InputError(f"command push_rules: slot {i} must be {{'slot': {i}, 'image': hex}}")
        try:
            images.append(bytes.fromhex(item["image"]))
        except ValueError as exc:
            raise InputError(f"command push_rules: slot {i}: the image is not hex") from exc
    return images


class CommandExecutor:
    """Records, runs once, confirms and audits commands; see the module docstring."""

    def __init__(
        self,
        store: Store,
        scheduler: ConversationScheduler,
        collector: Collector,
        *,
        clock: Clock | None = None,
        time_sync_threshold_s: float = DEFAULT_TIME_SYNC_THRESHOLD_S,
    ) -> None:
        self.store = store
        self.scheduler = scheduler
        self.collector = collector
        self.time_sync_threshold_s = time_sync_threshold_s
        self._clock = clock
        self._running: dict[str, asyncio.Task[CommandRecord]] = {}
        #: Runs a ``top_up`` command (set by the head-end's automation); returns its result.
        self.top_up_handler: Callable[[CommandRecord], Awaitable[dict[str, Any]]] | None = None

    @property
    def clock(self) -> Clock:
        return self._clock or current_clock()

    async def command(
        self,
        kind: CommandKind | str,
        meter_id: str,
        args: Mapping[str, Any] | None = None,
        *,
        requested_by: str,
        idempotency_key: str | None = None,
    ) -> CommandRecord:
        """Record and run a command (or return the stored one for a known idempotency key)."""
        record = await self._record(
            kind, meter_id, args, requested_by=requested_by, idempotency_key=idempotency_key
        )
        return await self._execute(record)

    async def submit(
        self,
        kind: CommandKind | str,
        meter_id: str,
        args: Mapping[str, Any] | None = None,
        *,
        requested_by: str,
        idempotency_key: str | None = None,
    ) -> CommandRecord:
        """Record a command and start it in the background; returns the record as stored (the
        REST API answers with it at once and reads the outcome back later). A known
        idempotency key returns the stored command and starts nothing new."""
        record = await self._record(
            kind, meter_id, args, requested_by=requested_by, idempotency_key=idempotency_key
        )
        if record.state is CommandState.REQUESTED and record.id not in self._running:
            self._spawn(record)
        return record

    async def _record(
        self,
        kind: CommandKind | str,
        meter_id: str,
        args: Mapping[str, Any] | None,
        *,
        requested_by: str,
        idempotency_key: str | None,
    ) -> CommandRecord:
        try:
            kind = CommandKind(kind)
        except ValueError as exc:
            known = ", ".join(k.value for k in CommandKind)
            raise InputError(f"unknown command {kind!r}; known: {known}") from exc
        arguments = dict(args or {})
        _check_args(kind, arguments)
        self.collector.config.meter(meter_id) if meter_id in {
            m.id for m in self.collector.config.meters
        } else None
        if meter_id not in {m.id for m in self.collector.config.meters}:
            raise InputError(f"unknown meter {meter_id!r}")
        record, _new = await self.store.request_command(
            kind.value,
            requested_by=requested_by,
            args=arguments,
            meter_id=meter_id,
            idempotency_key=idempotency_key,
        )
        return record

    async def _execute(self, record: CommandRecord) -> CommandRecord:
        if record.state.finished:
            return record
        running = self._running.get(record.id)
        if running is not None:
            return await asyncio.shield(running)
        if record.state is CommandState.RUNNING:
            return record  # running in another process: its outcome will be stored there
        return await asyncio.shield(self._spawn(record))

    def _spawn(self, record: CommandRecord) -> asyncio.Task[CommandRecord]:
        task = asyncio.create_task(self._run(record), name=f"command {record.id} {record.kind}")
        self._running[record.id] = task
        task.add_done_callback(lambda _: self._running.pop(record.id, None))
        return task

    async def _run(self, record: CommandRecord) -> CommandRecord:
        actor = record.requested_by
        try:
            await self.store.start_command(record.id, actor=actor)
        except CommandStateError:
            return await self.store.command(record.id)  # someone else started it: never twice
        meter_id = record.meter_id or ""
        kind = CommandKind(record.kind)
        error: BaseException | None = None
        result: dict[str, Any] | None = None
        if kind is CommandKind.TOP_UP:
            return await self._top_up(record)
        try:
            if self.collector.quarantined(meter_id):
                status = self.collector.status.get(meter_id)
                raise CommandFailed(
                    f"meter {meter_id} is quarantined ({status.quarantine_reason}); release it first"
                )
            work = self._work(kind, record.args)
            result = await self.scheduler.submit(
                meter_id, work, priority=Priority.ON_DEMAND, label=f"command {kind.value}"
            )
            if kind is CommandKind.READ:
                await self._save_read(meter_id, result)
            elif kind is CommandKind.RECOVER:
                await self._save_recovered(meter_id, record.args, result)
        except MetercomError as exc:
            error = exc
        except Exception as exc:
            log.exception("command %s (%s for %s) failed unexpectedly", record.id, kind.value, meter_id)
            error = exc
        if not isinstance(error, CommandFailed | InputError):
            await self.collector.report(meter_id, error)
        if error is not None:
            return await self.store.finish_command(
                record.id, succeeded=False, error=f"{type(error).__name__}: {error}", actor=actor
            )
        public = {k: v for k, v in (result or {}).items() if not k.startswith("_")}
        return await self.store.finish_command(record.id, succeeded=True, result=public, actor=actor)

    async def _top_up(self, record: CommandRecord) -> CommandRecord:
        actor = record.requested_by
        try:
            if self.top_up_handler is None:
                raise CommandFailed("top_up: this head-end has no prepaid accounts configured")
            result = await self.top_up_handler(record)
        except MetercomError as exc:
            return await self.store.finish_command(
                record.id, succeeded=False, error=f"{type(exc).__name__}: {exc}", actor=actor
            )
        return await self.store.finish_command(record.id, succeeded=True, result=result, actor=actor)

    # -- the conversations -----------------------------------------------------------------------

    def _work(
        self, kind: CommandKind, args: Mapping[str, Any]
    ) -> Callable[[MeterSession], Awaitable[dict[str, Any]]]:
        if kind is CommandKind.READ:
            objects = [Obis.parse(o) for o in args.get("objects", [])]

            async def read(session: MeterSession) -> dict[str, Any]:
                readings = await session.read_objects(objects)
                return {"readings": [r.to_json() for r in readings], "_readings": readings}

            return read
        if kind is CommandKind.RECOVER:
            profile = Obis.parse(args["profile"])
            start, end = _parse_time(args["start"], "start"), _parse_time(args["end"], "end")

            async def recover(session: MeterSession) -> dict[str, Any]:
                rows = await read_range(session, profile, start, end)
                return {"rows": len(rows), "_rows": rows}

            return recover
        if kind is CommandKind.TIME_SYNC:
            threshold_s = float(args.get("threshold_s", self.time_sync_threshold_s))
            return lambda session: self._time_sync(session, threshold_s)
        if kind is CommandKind.SET_OUTPUT:
            return _set_output(int(args["output"]), args["level"] == "high")
        if kind is CommandKind.PUSH_RULES:
            images = _rule_images(args)

            async def push(session: MeterSession) -> dict[str, Any]:
                if not isinstance(session, RuleSlotSession):
                    raise NotSupportedError("push_rules: this meter does not evaluate rules itself")
                return await session.sync_rule_slots(images)

            return push
        closed = kind is CommandKind.RECONNECT

        async def relay(session: MeterSession) -> dict[str, Any]:
            await (session.reconnect() if closed else session.disconnect())
            state = await session.read_relay()
            if state != closed:
                want, got = ("closed", "open") if closed else ("open", "closed")
                raise CommandFailed(f"{kind.value}: the relay reads back {got}, expected {want}")
            return {"relay": "closed" if state else "open", "confirmed": True}

        return relay

    async def _time_sync(self, session: MeterSession, threshold_s: float) -> dict[str, Any]:
        before = await session.read_clock()
        skew_s = (before - self.clock.now()).total_seconds()
        if abs(skew_s) <= threshold_s:
            return {"skew_s": skew_s, "set": False, "threshold_s": threshold_s}
        await session.set_clock(self.clock.now())
        after = await session.read_clock()
        skew_after_s = (after - self.clock.now()).total_seconds()
        if abs(skew_after_s) > threshold_s:
            raise CommandFailed(
                f"time_sync: the meter's clock was {skew_s:+.1f} s off and still reads "
                f"{skew_after_s:+.1f} s off after setting it (threshold {threshold_s:g} s)"
            )
        return {
            "skew_s": skew_s,
            "set": True,
            "skew_after_s": skew_after_s,
            "threshold_s": threshold_s,
            "confirmed": True,
        }

    async def _save_read(self, meter_id: str, result: Mapping[str, Any]) -> None:
        readings = [r for r in result.get("_readings", []) if r.obis is not None or r.address]
        if not readings:
            return
        now = self.clock.now()
        anchor = next((r for r in readings if r.captured_at is None), readings[0])
        key = str(anchor.obis) if anchor.obis is not None else anchor.address
        marker = Marker(key, anchor.captured_at or now)
        await self.store.save_readings(meter_id, readings, marker=marker, capture_time=now, actor="command")

    async def _save_recovered(
        self, meter_id: str, args: Mapping[str, Any], result: Mapping[str, Any]
    ) -> None:
        rows = result.get("_rows", [])
        if rows:
            await self.store.save_profile_rows(
                meter_id, str(Obis.parse(args["profile"])), rows, actor="command"
            )

    # -- restart ---------------------------------------------------------------------------------

    async def resume(self) -> None:
        """After a restart: fail commands that were running (outcome unknown), run requested ones."""
        for record in await self.store.commands(state=CommandState.RUNNING, limit=10_000):
            if record.kind == CommandKind.TOP_UP.value and self.top_up_handler is not None:
                await self._top_up(record)  # idempotent by the ledger key: finish it
                continue
            await self.store.finish_command(
                record.id,
                succeeded=False,
                error="interrupted by a head-end restart; its outcome is unknown, read the meter back",
                actor="headend",
            )
        for record in await self.store.commands(state=CommandState.REQUESTED, limit=10_000):
            if record.meter_id is None or record.meter_id not in {m.id for m in self.collector.config.meters}:
                await self.store.cancel_command(
                    record.id, actor="headend", reason="the meter is no longer configured"
                )
                continue
            task = asyncio.create_task(self._execute(record), name=f"resume command {record.id}")
            task.add_done_callback(lambda _: None)

    async def wait_idle(self) -> None:
        while self._running:
            await asyncio.wait(list(self._running.values()))
