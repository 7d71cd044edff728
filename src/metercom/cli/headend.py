"""``metercom serve`` and ``metercom status``: the head-end as a long-running service.

Rule: ``serve`` owns the process, never the policy. It applies the configuration file through
:class:`~metercom.service.config_store.ConfigStore` (an invalid file changes nothing; at start
it exits with code 2 and lists every problem, on a reload it logs them and keeps the version in
force), runs :class:`~metercom.service.headend.HeadEnd` on the system clock and stops it,
bounded, on SIGINT or SIGTERM. SIGHUP, or a change of the file's modification time (polled),
applies the file again; the head-end picks the new version up without a restart.

Where ``status`` gets its figures (a design choice; README.md "Run the head-end" says the same):

* from the store, always: the meters of the configuration in force, the last read of each (its
  newest collection marker, written in the same transaction as the readings, so it survives a
  crash), the newest error the collector audited (``meter.protocol_error``, ``meter.rejected``,
  ``meter.quarantined``) and the commands not yet finished;
* from the *status snapshot* the running service writes beside a SQLite store
  (``<store>.status.json``, replaced atomically every few seconds and at stop): next read,
  consecutive failures, quarantine and counters, which only the live service knows. The
  snapshot names the process that wrote it; ``status`` says when it is stale (older than
  ``--stale-after``, or its process is gone). For a PostgreSQL store, give ``serve`` and
  ``status`` the same ``--status-file``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TextIO

from metercom.clock import SystemClock
from metercom.errors import ConfigError, InputError, ServiceError
from metercom.service.adapters import MeterSessionFactory
from metercom.service.config_store import ConfigStore
from metercom.service.headend import HeadEnd
from metercom.service.status import MeterStatus
from metercom.service.store import CommandState, Store

__all__ = [
    "StatusRow",
    "collect_status",
    "default_store",
    "register_serve",
    "register_status",
    "serve",
    "status_file_for",
    "write_status_snapshot",
]

log = logging.getLogger(__name__)

_SubParsers = Any

_ACTOR: Final = "metercom serve"
_SNAPSHOT_INTERVAL_S: Final = 5.0
_HEADERS: Final = (
    "meter",
    "protocol",
    "line",
    "last read",
    "next read",
    "ok",
    "failed",
    "state",
    "last error",
)


# -- where things are --------------------------------------------------------------------------


def default_store(config_path: Path) -> str:
    """The SQLite store next to a configuration file: ``fleet.toml`` -> ``fleet.db``."""
    return str(config_path.with_suffix(".db"))


def _sqlite_path(url: str) -> Path | None:
    if "://" not in url:
        return Path(url)
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///").split("?")[0])
    return None


def status_file_for(store_url: str, explicit: str | None = None) -> Path | None:
    """Where the status snapshot of the service on ``store_url`` lives (``None``: unknown)."""
    if explicit:
        return Path(explicit)
    path = _sqlite_path(store_url)
    return path.with_name(path.name + ".status.json") if path is not None else None


def write_status_snapshot(path: Path, headend: HeadEnd, *, running: bool = True) -> None:
    """Replace the snapshot atomically (temporary file, fsync, rename)."""
    data = {
        "written_at": datetime.now(UTC).isoformat(),
        "pid": os.getpid(),
        "running": running,
        "config_version": headend.config_version,
        "meters": [row.to_json() for row in headend.status()],
    }
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=1)
            out.flush()
            os.fsync(out.fileno())
        Path(tmp).replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()
        raise


# -- serve --------------------------------------------------------------------------------------


def register_serve(subparsers: _SubParsers) -> None:
    """Add ``metercom serve --config FILE [--store URL]``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="run the head-end: collect the configured fleet on its schedules",
        description=(
            "Apply the configuration file, then collect the fleet on its schedules until SIGINT or "
            "SIGTERM. SIGHUP or a change of the file applies it again without a restart."
        ),
    )
    parser.add_argument(
        "--config", required=True, type=Path, metavar="FILE", help="fleet configuration (TOML)"
    )
    parser.add_argument(
        "--store", metavar="URL", help="SQLite path or URL, or a PostgreSQL URL (default: FILE with .db)"
    )
    parser.add_argument(
        "--status-file", metavar="PATH", help="status snapshot (default: beside a SQLite store)"
    )
    parser.add_argument(
        "--poll",
        type=float,
        default=2.0,
        metavar="S",
        help="check the file for changes every S seconds (0: never)",
    )
    parser.add_argument(
        "--stop-timeout", type=float, default=10.0, metavar="S", help="time running conversations get at stop"
    )
    parser.add_argument(
        "--max-conversations", type=int, default=64, metavar="N", help="conversations at once"
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="durable per-meter state such as DLMS invocation counters "
        "(default: beside a SQLite store, else ~/.local/state/metercom)",
    )
    from metercom.cli.web import add_web_arguments

    add_web_arguments(parser)
    parser.set_defaults(handler=_serve_command)


def _serve_command(args: argparse.Namespace) -> int:
    config_path: Path = args.config
    store_url = args.store or default_store(config_path)
    if logging.getLogger().getEffectiveLevel() > logging.INFO:
        logging.getLogger("metercom").setLevel(logging.INFO)  # a service logs what it does
    sqlite = _sqlite_path(store_url)
    state_dir = args.state_dir or (sqlite.parent if sqlite is not None else None)
    options: dict[str, Any] = {}
    factory = MeterSessionFactory(state_dir=state_dir)
    if factory is not None:
        options["session_factory"] = factory
    return asyncio.run(
        serve(
            config_path,
            store_url,
            status_file=status_file_for(store_url, args.status_file),
            poll_s=args.poll,
            stop_timeout_s=args.stop_timeout,
            max_conversations=args.max_conversations,
            headend_options=options,
            web=None if args.no_web else (args.listen or ""),
        )
    )


@dataclass(slots=True)
class _Reloader:
    path: Path
    configs: ConfigStore
    mtime_ns: int | None = None
    applied: list[int] = field(default_factory=list)

    def stat(self) -> int | None:
        try:
            return self.path.stat().st_mtime_ns
        except OSError:
            return None

    async def apply(self, why: str) -> int | None:
        self.mtime_ns = self.stat()
        try:
            version = await self.configs.apply(self.path, actor=_ACTOR, source=str(self.path))
        except ConfigError as exc:
            log.error("configuration not applied (%s); the version in force stays: %s", why, exc)
            return None
        self.applied.append(version)
        return version


async def serve(
    config_path: Path,
    store_url: str,
    *,
    status_file: Path | None = None,
    poll_s: float = 2.0,
    stop_timeout_s: float = 10.0,
    max_conversations: int = 64,
    ready: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
    headend_options: dict[str, Any] | None = None,
    web: str | None = None,
) -> int:
    """Run the head-end until ``stop`` is set or SIGINT/SIGTERM arrives; returns the exit code.

    ``web`` serves the dashboard and REST API in the same loop: ``""`` at ``[web] listen``
    (default 127.0.0.1:8080), ``"HOST:PORT"`` there; ``None``: no web server.

    Raises :class:`~metercom.errors.ConfigError` (exit code 2) when the file is invalid at start:
    then nothing was changed in the store.
    """
    store = await Store.open(store_url)
    try:
        configs = ConfigStore(store)
        reloader = _Reloader(config_path, configs)
        reloader.mtime_ns = reloader.stat()
        version = await configs.apply(config_path, actor=_ACTOR, source=str(config_path))
        log.info("configuration %s is version %d; store %s", config_path, version, store.url)
        headend = HeadEnd(
            store,
            configs,
            clock=SystemClock(),
            stop_timeout_s=stop_timeout_s,
            max_conversations=max_conversations,
            refresh_interval_s=10.0,
            **(headend_options or {}),
        )
        await headend.start()
        server = None
        if web is not None:
            from metercom.cli.web import WebServer, web_settings

            server = WebServer(headend, web_settings(headend, web or None), stop_timeout_s=stop_timeout_s)
            try:
                await server.start()
            except BaseException:
                await headend.stop()
                raise
        stop_event = stop or asyncio.Event()
        reload_event = asyncio.Event()
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        for signum, event in (
            (signal.SIGINT, stop_event),
            (signal.SIGTERM, stop_event),
            (signal.SIGHUP, reload_event),
        ):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, event.set)
                installed.append(signum)
        if ready is not None:
            ready.set()
        print(
            f"metercom: serving {len(headend.config.meters)} meters (configuration version {version}, "
            f"store {store.url}); SIGHUP or editing {config_path} reloads, Ctrl-C stops",
            file=sys.stderr,
            flush=True,
        )
        if server is not None:
            print(f"metercom: dashboard and REST API at {server.url}", file=sys.stderr, flush=True)
        try:
            await _serve_loop(headend, reloader, stop_event, reload_event, status_file, poll_s)
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)
            log.info("stopping (at most %.0f s for running conversations)", stop_timeout_s)
            if server is not None:
                await server.stop()
            await headend.stop()
            if status_file is not None:
                _snapshot_quietly(status_file, headend, running=False)
        print("metercom: head-end stopped", file=sys.stderr, flush=True)
        return 0
    finally:
        await store.close()


async def _serve_loop(  # noqa: PLR0917 - private
    headend: HeadEnd,
    reloader: _Reloader,
    stop_event: asyncio.Event,
    reload_event: asyncio.Event,
    status_file: Path | None,
    poll_s: float,
) -> None:
    loop = asyncio.get_running_loop()
    next_snapshot = loop.time()
    tick_s = min(poll_s, 1.0) if poll_s > 0 else 1.0
    while not stop_event.is_set():
        if status_file is not None and loop.time() >= next_snapshot:
            _snapshot_quietly(status_file, headend)
            next_snapshot = loop.time() + _SNAPSHOT_INTERVAL_S
        waiters = [asyncio.ensure_future(stop_event.wait()), asyncio.ensure_future(reload_event.wait())]
        await asyncio.wait(waiters, timeout=tick_s, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
        if stop_event.is_set():
            return
        why = None
        if reload_event.is_set():
            reload_event.clear()
            why = "SIGHUP"
        elif poll_s > 0 and reloader.stat() != reloader.mtime_ns:
            why = "the file changed"
        if why is not None:
            before = headend.config_version
            version = await reloader.apply(why)
            if version is not None and version != before:
                log.info("reloaded %s (%s): version %d in force", reloader.path, why, version)
            elif version is not None:
                log.info("reloaded %s (%s): unchanged, version %d", reloader.path, why, version)


def _snapshot_quietly(path: Path, headend: HeadEnd, *, running: bool = True) -> None:
    try:
        write_status_snapshot(path, headend, running=running)
    except OSError as exc:
        log.warning("status snapshot %s not written: %s", path, exc)


# -- status -------------------------------------------------------------------------------------


@dataclass(slots=True)
class StatusRow:
    """One meter in ``metercom status``: store facts, merged with the live snapshot."""

    meter_id: str
    protocol: str
    line_id: str
    last_read_at: datetime | None = None
    next_read_at: datetime | None = None
    reads_ok: int | None = None
    reads_failed: int | None = None
    consecutive_failures: int | None = None
    quarantined: bool = False
    quarantine_reason: str | None = None
    available: bool | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    pending_commands: int = 0

    @property
    def state(self) -> str:
        if self.quarantined:
            return "quarantined"
        if self.available is False:
            return "unavailable"
        if self.pending_commands:
            return f"{self.pending_commands} command(s)"
        return "ok" if self.last_read_at is not None else "not read yet"

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {}
        for name in self.__slots__:
            value = getattr(self, name)
            out[name] = value.isoformat() if isinstance(value, datetime) else value
        out["state"] = self.state
        return out


@dataclass(slots=True)
class StatusReport:
    store: str
    config_version: int | None
    rows: list[StatusRow]
    snapshot_at: datetime | None = None
    snapshot_pid: int | None = None
    service: str = "no status snapshot"
    #: The outbox per upstream sink (backlog size and age), from the store.
    forwarding: list[dict[str, object]] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "store": self.store,
            "config_version": self.config_version,
            "service": self.service,
            "snapshot_at": self.snapshot_at.isoformat() if self.snapshot_at else None,
            "meters": [row.to_json() for row in self.rows],
            "forwarding": self.forwarding,
        }


def _parse_time(value: object) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def collect_status(
    store: Store, snapshot_path: Path | None, *, stale_after_s: float = 30.0
) -> StatusReport:
    """The status of every meter of the configuration in force; see the module docstring."""
    head = await store.config_versions(limit=1)
    version = head[0].version if head else None
    rows: dict[str, StatusRow] = {}
    for meter in await store.meters(active=True):
        row = rows[meter.id] = StatusRow(meter.id, meter.protocol, meter.line_id)
        markers = await store.markers(meter.id)
        if markers:
            row.last_read_at = max(markers.values())
    for entry in await store.audit_log(action="meter.*", limit=10_000):
        found = rows.get(entry.subject)
        if found is None or entry.action not in (
            "meter.protocol_error",
            "meter.rejected",
            "meter.quarantined",
        ):
            continue
        detail = entry.detail if isinstance(entry.detail, dict) else {}
        found.last_error, found.last_error_at = str(detail.get("error", entry.action)), entry.at
    for state in (CommandState.REQUESTED, CommandState.RUNNING):
        for command in await store.commands(state=state, limit=10_000):
            if command.meter_id in rows:
                rows[command.meter_id].pending_commands += 1
    report = StatusReport(store.url, version, [rows[k] for k in sorted(rows)])
    now = datetime.now(UTC)
    report.forwarding = [
        {
            "sink": b.sink,
            "pending": b.pending,
            "in_flight": b.in_flight,
            "oldest_age_s": round(b.age_s(now), 1),
            "confirmed_total": b.confirmed_total,
            "expired_total": b.expired_total,
            "last_confirmed_at": b.last_confirmed_at.isoformat() if b.last_confirmed_at else None,
        }
        for b in await store.outbox_backlog()
    ]
    if snapshot_path is None:
        return report
    try:
        data = json.loads(snapshot_path.read_bytes())  # noqa: ASYNC240 - a small local file
    except FileNotFoundError:
        return report
    except (OSError, ValueError) as exc:
        report.service = f"status snapshot unreadable: {exc}"
        return report
    report.snapshot_at = _parse_time(data.get("written_at"))
    report.snapshot_pid = data.get("pid")
    age_s = (datetime.now(UTC) - report.snapshot_at).total_seconds() if report.snapshot_at else None
    alive = isinstance(report.snapshot_pid, int) and _pid_alive(report.snapshot_pid)
    if data.get("running") and alive and age_s is not None and age_s <= stale_after_s:
        report.service = f"running (pid {report.snapshot_pid}, snapshot {age_s:.0f} s old)"
    elif not data.get("running"):
        report.service = f"stopped (last snapshot {report.snapshot_at:%Y-%m-%d %H:%M:%S} UTC)"
    else:
        report.service = f"not running or stale (pid {report.snapshot_pid}, snapshot {age_s or 0:.0f} s old)"
    for item in data.get("meters", []):
        known = rows.get(item.get("meter_id"))
        if known is None:
            continue
        row = known
        live = MeterStatus(item["meter_id"])
        row.next_read_at = (
            _parse_time(item.get("next_read_at")) if report.service.startswith("running") else None
        )
        row.reads_ok, row.reads_failed = (
            item.get("reads_ok", live.reads_ok),
            item.get("reads_failed", live.reads_failed),
        )
        row.consecutive_failures = item.get("consecutive_failures", live.consecutive_failures)
        row.quarantined = bool(item.get("quarantined", False))
        row.quarantine_reason = item.get("quarantine_reason")
        row.available = item.get("available")
        error_at = _parse_time(item.get("last_error_at"))
        if item.get("last_error") and (
            row.last_error_at is None or (error_at and error_at >= row.last_error_at)
        ):
            row.last_error, row.last_error_at = item["last_error"], error_at
        last = _parse_time(item.get("last_read_at"))
        if last is not None and (row.last_read_at is None or last > row.last_read_at):
            row.last_read_at = last
    return report


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value is not None else "-"


def render_status(report: StatusReport, out: TextIO) -> None:
    from metercom.cli.output import render_table

    version = report.config_version if report.config_version is not None else "none"
    print(f"store {report.store}, configuration version {version}; service: {report.service}", file=out)
    rows: list[Sequence[object]] = []
    for row in report.rows:
        error = (row.quarantine_reason if row.quarantined else row.last_error) or ""
        rows.append(
            (
                row.meter_id,
                row.protocol,
                row.line_id,
                _when(row.last_read_at),
                _when(row.next_read_at),
                "" if row.reads_ok is None else row.reads_ok,
                "" if row.reads_failed is None else row.reads_failed,
                row.state,
                error if len(error) <= 60 else error[:57] + "...",
            )
        )
    print(render_table(_HEADERS, rows), file=out)
    for sink in report.forwarding:
        print(
            f"forwarding to {sink['sink']}: {sink['pending']} pending (oldest {sink['oldest_age_s']} s), "
            f"{sink['confirmed_total']} confirmed, {sink['expired_total']} expired unsent",
            file=out,
        )
    print("times in UTC", file=out)


def register_status(subparsers: _SubParsers) -> None:
    """Add ``metercom status [--store URL] [--json]``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "status",
        help="per meter: last and next read, errors, quarantine",
        description="Show the head-end's per-meter status from its store and the running service's snapshot.",
    )
    parser.add_argument(
        "--store", metavar="URL", help="the store (default: the .db of --config, or ./fleet.db)"
    )
    parser.add_argument(
        "--config", type=Path, metavar="FILE", help="find the store next to this configuration"
    )
    parser.add_argument("--status-file", metavar="PATH", help="the service's status snapshot")
    parser.add_argument(
        "--stale-after", type=float, default=30.0, metavar="S", help="snapshot age that counts as stale"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=_status_command)


def _status_command(args: argparse.Namespace) -> int:
    store_url = args.store or default_store(args.config or Path("fleet.toml"))
    path = _sqlite_path(store_url)
    if path is not None and not path.exists():
        raise InputError(f"there is no store at {path}: give --store, or run `metercom serve` first")

    async def run() -> int:
        try:
            store = await Store.open(store_url, migrate_schema=False)
        except ServiceError as exc:
            raise ServiceError(f"cannot open the store {store_url}: {exc}") from exc
        try:
            report = await collect_status(
                store, status_file_for(store_url, args.status_file), stale_after_s=args.stale_after
            )
        finally:
            await store.close()
        if args.json:
            json.dump(report.to_json(), sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            render_status(report, sys.stdout)
        return 0

    return asyncio.run(run())
