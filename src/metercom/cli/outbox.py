"""``metercom outbox status|unregister``: the store-and-forward outbox of the upstream sinks.

Rule: an upstream removed from the configuration stays registered in the outbox, its backlog
kept, until someone decides to drop it (docs/forwarding.md). ``status`` shows every registered
sink's backlog and flags the ones the configuration no longer has; ``unregister`` drops one
sink with its backlog (:meth:`~metercom.service.store.Store.unregister_outbox_sink`, audited with
the OS user as actor). It refuses a sink that is still configured, in the file or in the version
in force in the store (the service would register it again), and it asks before dropping
anything: on a terminal it prompts, otherwise it needs ``--yes``.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from metercom.errors import InputError, ServiceError
from metercom.service.config_store import ConfigStore
from metercom.service.config_validate import load_config
from metercom.service.store import Store

__all__ = ["OutboxSinkRow", "os_user", "outbox_status", "register_outbox"]

_SubParsers = Any


@dataclass(frozen=True, slots=True)
class OutboxSinkRow:
    """One sink of the outbox as ``metercom outbox status`` shows it."""

    sink: str
    #: Entries not yet confirmed, and of those the ones of the batch in flight.
    pending: int
    in_flight: int
    #: Seconds since the oldest pending entry was stored (0: nothing pending).
    oldest_age_s: float
    confirmed_total: int
    expired_total: int
    #: Whether the configuration file has an ``[[upstreams]]`` entry of this id.
    configured: bool
    #: Whether the configuration version in force in the store has one.
    in_force: bool

    @property
    def orphaned(self) -> bool:
        """Registered but configured nowhere: its backlog waits for ``unregister`` or retention."""
        return not self.configured and not self.in_force

    def to_json(self) -> dict[str, object]:
        return {
            "sink": self.sink,
            "pending": self.pending,
            "in_flight": self.in_flight,
            "oldest_age_s": self.oldest_age_s,
            "confirmed_total": self.confirmed_total,
            "expired_total": self.expired_total,
            "configured": self.configured,
            "in_force": self.in_force,
            "registered_not_configured": self.orphaned,
        }


def os_user() -> str:
    """The OS user running this process (the actor of what the CLI audits)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry
        return f"uid {os.getuid()}"


async def outbox_status(
    store: Store, configured: set[str], *, now: datetime | None = None
) -> list[OutboxSinkRow]:
    """Every registered sink, by name; ``configured``: the upstream ids of the configuration."""
    applied = await ConfigStore(store).current()
    in_force = {u.id for u in applied.config.upstreams} if applied is not None else set()
    moment = now or datetime.now(UTC)
    return [
        OutboxSinkRow(
            b.sink,
            b.pending,
            b.in_flight,
            round(b.age_s(moment), 1),
            b.confirmed_total,
            b.expired_total,
            b.sink in configured,
            b.sink in in_force,
        )
        for b in await store.outbox_backlog()
    ]


def render_outbox(rows: Sequence[OutboxSinkRow], out: TextIO) -> None:
    from metercom.cli.output import render_table

    if not rows:
        print("no upstream sinks are registered in the outbox", file=out)
        return
    headers = ("sink", "pending", "in flight", "oldest (s)", "confirmed", "expired", "configured")
    table = [
        (
            r.sink,
            r.pending,
            r.in_flight,
            r.oldest_age_s,
            r.confirmed_total,
            r.expired_total,
            "yes" if r.configured else ("in force only" if r.in_force else "NO"),
        )
        for r in rows
    ]
    print(render_table(headers, table), file=out)
    orphans = [r.sink for r in rows if r.orphaned]
    if orphans:
        print(
            f"registered but not configured: {', '.join(orphans)} "
            "(drop with `metercom outbox unregister NAME --config FILE`)",
            file=out,
        )


def register_outbox(subparsers: _SubParsers) -> None:
    """Add ``metercom outbox status`` and ``metercom outbox unregister NAME``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "outbox",
        help="the forwarding outbox: backlog per upstream sink, drop a removed sink",
        description="Inspect the store-and-forward outbox of the upstream sinks, or drop one.",
    )
    actions = parser.add_subparsers(dest="outbox_action", metavar="ACTION", required=True)
    status = actions.add_parser(
        "status",
        help="per sink: pending entries, oldest age, whether it is still configured",
        description="Show every sink registered in the outbox with its backlog.",
    )
    _common(status)
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=_status_command)
    drop = actions.add_parser(
        "unregister",
        help="forget a sink removed from the configuration and drop its backlog (audited)",
        description=(
            "Forget an upstream sink and drop everything it still had pending. Refused while the "
            "sink is configured. Asks for confirmation on a terminal; otherwise give --yes."
        ),
    )
    drop.add_argument("name", metavar="NAME", help="the sink (the upstream's id)")
    _common(drop)
    drop.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    drop.set_defaults(handler=_unregister_command)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", required=True, type=Path, metavar="FILE", help="fleet configuration (TOML)"
    )
    parser.add_argument(
        "--store", metavar="URL", help="SQLite path or URL, or a PostgreSQL URL (default: FILE with .db)"
    )


async def _open(args: argparse.Namespace) -> tuple[Store, set[str]]:
    from metercom.cli.headend import _sqlite_path, default_store

    config = load_config(args.config)
    store_url = args.store or default_store(args.config)
    path = _sqlite_path(store_url)
    if path is not None and not path.exists():
        raise InputError(f"there is no store at {path}: give --store, or run `metercom serve` first")
    try:
        store = await Store.open(store_url, migrate_schema=False)
    except ServiceError as exc:
        raise ServiceError(f"cannot open the store {store_url}: {exc}") from exc
    return store, {u.id for u in config.upstreams}


def _status_command(args: argparse.Namespace) -> int:
    async def run() -> int:
        store, configured = await _open(args)
        try:
            rows = await outbox_status(store, configured)
        finally:
            await store.close()
        if args.json:
            json.dump([r.to_json() for r in rows], sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            render_outbox(rows, sys.stdout)
        return 0

    return asyncio.run(run())


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def _confirm(question: str, ask: Callable[[str], str]) -> bool:
    try:
        answer = ask(question)
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def _unregister_command(args: argparse.Namespace) -> int:
    name: str = args.name

    async def run() -> int:
        store, configured = await _open(args)
        try:
            row = next((r for r in await outbox_status(store, configured) if r.sink == name), None)
            if row is None:
                raise InputError(f"no sink {name!r} is registered in the outbox")
            if not row.orphaned:
                where = "in the configuration file" if row.configured else "in the configuration in force"
                raise InputError(
                    f"sink {name!r} is still configured ({where}): remove its [[upstreams]] entry "
                    "and apply the file first"
                )
            if not args.yes:
                if not _interactive():
                    raise InputError(
                        f"unregistering {name!r} drops {row.pending} pending entries; "
                        "not on a terminal, so give --yes to confirm"
                    )
                question = (
                    f"Forget sink {name!r} and drop its {row.pending} pending entries "
                    f"(oldest {row.oldest_age_s:.0f} s)? [y/N] "
                )
                if not _confirm(question, input):
                    print("nothing changed", file=sys.stderr)
                    return 1
            dropped = await store.unregister_outbox_sink(name, actor=os_user())
        finally:
            await store.close()
        print(f"sink {name!r} unregistered, {dropped} pending entries dropped")
        return 0

    return asyncio.run(run())
