"""The store's side of the REST API: users, browser sessions, machine tokens and approvals.

Rule: each method is one store transaction (through the :class:`~.store.Store`'s worker, like
every store method). Secrets never reach the store in the clear: passwords arrive as Argon2id
hashes (hashing is the API's job), session ids and tokens as the SHA-256 hex of the random
value the client holds, so a copy of the database lets nobody log in. Expiry is decided by the
caller's clock (the store's), never by the database server's.

Theory of operation: :class:`WebStore` wraps an open store. Deleting a user deletes its
sessions and tokens in the same transaction; changing a password or disabling a user deletes
its sessions. An approval (a disconnect held for a second person) moves once, atomically, from
``awaiting_approval`` to ``approved`` or ``rejected``: of two deciders exactly one wins and the
other gets :class:`ApprovalStateError`, so an approved disconnect is requested once.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from metercom.errors import StoreError
from metercom.service.store.records import CommandRecord
from metercom.service.store.store import Store
from metercom.service.store.store import _command as command_record
from metercom.service.store.tables import (
    audit_log,
    commands,
    events,
    readings,
    web_approvals,
    web_sessions,
    web_tokens,
    web_users,
)
from metercom.service.store.types import utc

__all__ = [
    "APPROVAL_STATES",
    "ApprovalRecord",
    "ApprovalStateError",
    "SessionRecord",
    "TokenRecord",
    "UserConflictError",
    "UserRecord",
    "WebStore",
]

APPROVAL_STATES: Final = ("awaiting_approval", "approved", "rejected")


class UserConflictError(StoreError):
    """A user with that name exists already (or does not exist for an update)."""


class ApprovalStateError(StoreError):
    """The approval was already decided."""

    def __init__(self, message: str, *, state: str | None = None) -> None:
        self.state = state
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class UserRecord:
    username: str
    password_hash: str
    role: str
    meter_ids: tuple[str, ...]
    disabled: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id_hash: str
    username: str
    csrf_token: str
    client: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id: str
    name: str
    username: str
    created_by: str
    created_at: datetime
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class ApprovalRecord:
    id: str
    kind: str
    meter_id: str
    args: Mapping[str, Any]
    requested_by: str
    requested_at: datetime
    request_id: str | None
    state: str
    decided_by: str | None
    decided_at: datetime | None
    reason: str | None
    command_id: str | None


def _user(row: Row[Any]) -> UserRecord:
    return UserRecord(
        row.username,
        row.password_hash,
        row.role,
        tuple(json.loads(row.meter_ids)),
        bool(row.disabled),
        utc(row.created_at),
        utc(row.updated_at),
    )


def _session(row: Row[Any]) -> SessionRecord:
    return SessionRecord(
        row.id_hash,
        row.username,
        row.csrf_token,
        row.client,
        utc(row.created_at),
        utc(row.last_seen_at),
        utc(row.expires_at),
    )


def _token(row: Row[Any]) -> TokenRecord:
    return TokenRecord(
        row.id,
        row.name,
        row.username,
        row.created_by,
        utc(row.created_at),
        utc(row.last_used_at) if row.last_used_at is not None else None,
    )


def _approval(row: Row[Any]) -> ApprovalRecord:
    return ApprovalRecord(
        row.id,
        row.kind,
        row.meter_id,
        json.loads(row.args),
        row.requested_by,
        utc(row.requested_at),
        row.request_id,
        row.state,
        row.decided_by,
        utc(row.decided_at) if row.decided_at is not None else None,
        row.reason,
        row.command_id,
    )


class WebStore:
    """Users, sessions, tokens and approvals of one :class:`~.store.Store`; see the module docstring."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def now(self) -> datetime:
        """The store's clock (UTC)."""
        return self.store._now()

    # -- users ------------------------------------------------------------------------------------

    async def add_user(
        self, username: str, password_hash: str, role: str, meter_ids: Sequence[str] = ()
    ) -> UserRecord:
        """Create a user; :class:`UserConflictError` if the name is taken."""
        now = self.now()
        values = {
            "username": username,
            "password_hash": password_hash,
            "role": role,
            "meter_ids": json.dumps(list(meter_ids)),
            "disabled": False,
            "created_at": now,
            "updated_at": now,
        }

        def job(conn: Connection) -> UserRecord:
            if conn.execute(select(web_users.c.username).where(web_users.c.username == username)).first():
                raise UserConflictError(f"user {username!r} exists already")
            try:
                conn.execute(insert(web_users).values(**values))
            except IntegrityError as exc:  # a concurrent insert of the same name
                raise UserConflictError(f"user {username!r} exists already") from exc
            return _user(conn.execute(select(web_users).where(web_users.c.username == username)).one())

        return await self.store._run("add a user", job)

    async def user(self, username: str) -> UserRecord | None:
        query = select(web_users).where(web_users.c.username == username)
        return await self.store._run(
            "read a user", lambda conn: _user(r) if (r := conn.execute(query).first()) else None, write=False
        )

    async def users(self) -> list[UserRecord]:
        query = select(web_users).order_by(web_users.c.username)
        return await self.store._run(
            "list users", lambda conn: [_user(r) for r in conn.execute(query)], write=False
        )

    async def count_users(self) -> int:
        query = select(func.count()).select_from(web_users)
        return await self.store._run(
            "count users", lambda conn: int(conn.execute(query).scalar() or 0), write=False
        )

    async def update_user(
        self,
        username: str,
        *,
        password_hash: str | None = None,
        role: str | None = None,
        meter_ids: Sequence[str] | None = None,
        disabled: bool | None = None,
    ) -> UserRecord:
        """Change a user; a new password or disabling ends its sessions. Raises
        :class:`UserConflictError` for an unknown user."""
        now = self.now()
        values: dict[str, Any] = {"updated_at": now}
        if password_hash is not None:
            values["password_hash"] = password_hash
        if role is not None:
            values["role"] = role
        if meter_ids is not None:
            values["meter_ids"] = json.dumps(list(meter_ids))
        if disabled is not None:
            values["disabled"] = disabled

        def job(conn: Connection) -> UserRecord:
            done = conn.execute(update(web_users).where(web_users.c.username == username).values(**values))
            if done.rowcount != 1:
                raise UserConflictError(f"no user {username!r}")
            if password_hash is not None or disabled:
                conn.execute(delete(web_sessions).where(web_sessions.c.username == username))
            return _user(conn.execute(select(web_users).where(web_users.c.username == username)).one())

        return await self.store._run("change a user", job)

    async def delete_user(self, username: str) -> bool:
        """Delete a user with its sessions and tokens; False if there was none."""

        def job(conn: Connection) -> bool:
            conn.execute(delete(web_sessions).where(web_sessions.c.username == username))
            conn.execute(delete(web_tokens).where(web_tokens.c.username == username))
            return conn.execute(delete(web_users).where(web_users.c.username == username)).rowcount == 1

        return await self.store._run("delete a user", job)

    # -- sessions ---------------------------------------------------------------------------------

    async def add_session(
        self, id_hash: str, username: str, csrf_token: str, *, client: str, expires_at: datetime
    ) -> SessionRecord:
        now = self.now()
        values = {
            "id_hash": id_hash,
            "username": username,
            "csrf_token": csrf_token,
            "client": client[:128],
            "created_at": now,
            "last_seen_at": now,
            "expires_at": utc(expires_at),
        }

        def job(conn: Connection) -> SessionRecord:
            conn.execute(insert(web_sessions).values(**values))
            return _session(conn.execute(select(web_sessions).where(web_sessions.c.id_hash == id_hash)).one())

        return await self.store._run("add a session", job)

    async def session(self, id_hash: str) -> SessionRecord | None:
        query = select(web_sessions).where(web_sessions.c.id_hash == id_hash)
        return await self.store._run(
            "read a session",
            lambda conn: _session(r) if (r := conn.execute(query).first()) else None,
            write=False,
        )

    async def touch_session(self, id_hash: str, at: datetime) -> None:
        stmt = update(web_sessions).where(web_sessions.c.id_hash == id_hash).values(last_seen_at=utc(at))
        await self.store._run("touch a session", lambda conn: conn.execute(stmt))

    async def delete_session(self, id_hash: str) -> bool:
        stmt = delete(web_sessions).where(web_sessions.c.id_hash == id_hash)
        return await self.store._run("delete a session", lambda conn: conn.execute(stmt).rowcount == 1)

    async def delete_expired_sessions(self, *, now: datetime, idle_before: datetime) -> int:
        """Delete sessions past their lifetime or idle since before ``idle_before``."""
        stmt = delete(web_sessions).where(
            (web_sessions.c.expires_at <= utc(now)) | (web_sessions.c.last_seen_at < utc(idle_before))
        )
        return await self.store._run("expire sessions", lambda conn: int(conn.execute(stmt).rowcount))

    # -- tokens -----------------------------------------------------------------------------------

    async def add_token(self, token_hash: str, *, name: str, username: str, created_by: str) -> TokenRecord:
        now = self.now()
        token_id = uuid.uuid4().hex
        values = {
            "id": token_id,
            "token_hash": token_hash,
            "name": name,
            "username": username,
            "created_by": created_by,
            "created_at": now,
            "last_used_at": None,
        }

        def job(conn: Connection) -> TokenRecord:
            if not conn.execute(select(web_users.c.username).where(web_users.c.username == username)).first():
                raise UserConflictError(f"no user {username!r}")
            conn.execute(insert(web_tokens).values(**values))
            return _token(conn.execute(select(web_tokens).where(web_tokens.c.id == token_id)).one())

        return await self.store._run("add a token", job)

    async def token_by_hash(self, token_hash: str) -> TokenRecord | None:
        query = select(web_tokens).where(web_tokens.c.token_hash == token_hash)
        return await self.store._run(
            "read a token",
            lambda conn: _token(r) if (r := conn.execute(query).first()) else None,
            write=False,
        )

    async def touch_token(self, token_id: str, at: datetime) -> None:
        stmt = update(web_tokens).where(web_tokens.c.id == token_id).values(last_used_at=utc(at))
        await self.store._run("touch a token", lambda conn: conn.execute(stmt))

    async def tokens(self, username: str | None = None) -> list[TokenRecord]:
        query = select(web_tokens).order_by(web_tokens.c.created_at, web_tokens.c.id)
        if username is not None:
            query = query.where(web_tokens.c.username == username)
        return await self.store._run(
            "list tokens", lambda conn: [_token(r) for r in conn.execute(query)], write=False
        )

    async def delete_token(self, token_id: str) -> bool:
        stmt = delete(web_tokens).where(web_tokens.c.id == token_id)
        return await self.store._run("delete a token", lambda conn: conn.execute(stmt).rowcount == 1)

    # -- approvals --------------------------------------------------------------------------------

    async def add_approval(
        self,
        kind: str,
        meter_id: str,
        args: Mapping[str, Any],
        *,
        requested_by: str,
        request_id: str | None = None,
    ) -> tuple[ApprovalRecord, bool]:
        """Hold a command for approval; with a known ``request_id`` the existing one is returned
        (``False``) when it is the same request, else :class:`ApprovalStateError`."""
        now = self.now()
        approval_id = uuid.uuid4().hex
        args_json = json.dumps(dict(args), sort_keys=True, separators=(",", ":"))

        def job(conn: Connection) -> tuple[ApprovalRecord, bool]:
            if request_id is not None:
                row = conn.execute(
                    select(web_approvals).where(web_approvals.c.request_id == request_id)
                ).first()
                if row is not None:
                    if (row.kind, row.meter_id, row.args) != (kind, meter_id, args_json):
                        raise ApprovalStateError(
                            f"request id {request_id!r} was already used for a different command",
                            state=row.state,
                        )
                    return _approval(row), False
            conn.execute(
                insert(web_approvals).values(
                    id=approval_id,
                    kind=kind,
                    meter_id=meter_id,
                    args=args_json,
                    requested_by=requested_by,
                    requested_at=now,
                    request_id=request_id,
                    state="awaiting_approval",
                )
            )
            return _approval(
                conn.execute(select(web_approvals).where(web_approvals.c.id == approval_id)).one()
            ), True

        return await self.store._run("hold a command for approval", job)

    async def approval(self, approval_id: str) -> ApprovalRecord | None:
        query = select(web_approvals).where(web_approvals.c.id == approval_id)
        return await self.store._run(
            "read an approval",
            lambda conn: _approval(r) if (r := conn.execute(query).first()) else None,
            write=False,
        )

    async def approval_of_command(self, command_id: str) -> ApprovalRecord | None:
        query = select(web_approvals).where(web_approvals.c.command_id == command_id)
        return await self.store._run(
            "read an approval",
            lambda conn: _approval(r) if (r := conn.execute(query).first()) else None,
            write=False,
        )

    async def approvals(
        self, *, meter_id: str | None = None, state: str | None = None, limit: int = 100
    ) -> list[ApprovalRecord]:
        """Approvals, newest first."""
        query = select(web_approvals)
        if meter_id is not None:
            query = query.where(web_approvals.c.meter_id == meter_id)
        if state is not None:
            query = query.where(web_approvals.c.state == state)
        query = query.order_by(web_approvals.c.requested_at.desc(), web_approvals.c.id).limit(limit)
        return await self.store._run(
            "list approvals", lambda conn: [_approval(r) for r in conn.execute(query)], write=False
        )

    async def decide_approval(
        self, approval_id: str, *, approved: bool, by: str, reason: str | None = None
    ) -> ApprovalRecord:
        """``awaiting_approval`` -> ``approved``/``rejected``, atomically (see the module docstring)."""
        now = self.now()
        state = "approved" if approved else "rejected"

        def job(conn: Connection) -> ApprovalRecord:
            done = conn.execute(
                update(web_approvals)
                .where(web_approvals.c.id == approval_id, web_approvals.c.state == "awaiting_approval")
                .values(state=state, decided_by=by, decided_at=now, reason=reason)
            )
            row = conn.execute(select(web_approvals).where(web_approvals.c.id == approval_id)).first()
            if row is None:
                raise ApprovalStateError(f"no approval {approval_id!r}")
            if done.rowcount != 1:
                raise ApprovalStateError(f"command {approval_id} is already {row.state}", state=row.state)
            return _approval(row)

        return await self.store._run("decide an approval", job)

    async def link_command(self, approval_id: str, command_id: str) -> None:
        stmt = update(web_approvals).where(web_approvals.c.id == approval_id).values(command_id=command_id)
        await self.store._run("link an approval to its command", lambda conn: conn.execute(stmt))

    # -- read helpers for the API -----------------------------------------------------------------

    async def latest_readings(
        self, meter_id: str, obis_codes: Sequence[str]
    ) -> dict[str, tuple[datetime, str, str, str | None]]:
        """The newest stored reading of each of ``obis_codes`` (canonical text): obis ->
        ``(capture_time, value_kind, value_text, unit)``; codes never stored are missing."""
        if not obis_codes:
            return {}
        newest = (
            select(readings.c.obis, func.max(readings.c.capture_time).label("at"))
            .where(readings.c.meter_id == meter_id, readings.c.obis.in_(list(obis_codes)))
            .group_by(readings.c.obis)
            .subquery()
        )
        query = (
            select(
                readings.c.obis,
                readings.c.capture_time,
                readings.c.value_kind,
                readings.c.value_text,
                readings.c.unit,
            )
            .join(newest, (readings.c.obis == newest.c.obis) & (readings.c.capture_time == newest.c.at))
            .where(readings.c.meter_id == meter_id)
        )

        def job(conn: Connection) -> dict[str, tuple[datetime, str, str, str | None]]:
            return {
                row.obis: (utc(row.capture_time), row.value_kind, row.value_text, row.unit)
                for row in conn.execute(query)
            }

        return await self.store._run("read the newest readings", job, write=False)

    async def command_counts(self) -> dict[tuple[str, str], int]:
        """Commands by (kind, state)."""
        query = select(commands.c.kind, commands.c.state, func.count()).group_by(
            commands.c.kind, commands.c.state
        )
        return await self.store._run(
            "count commands",
            lambda conn: {(row[0], row[1]): int(row[2]) for row in conn.execute(query)},
            write=False,
        )

    async def recent_commands(
        self, *, meter_id: str | None = None, state: str | None = None, limit: int = 100
    ) -> list[CommandRecord]:
        """Commands, newest request first (the store's own listing is oldest first)."""
        query = select(commands)
        if meter_id is not None:
            query = query.where(commands.c.meter_id == meter_id)
        if state is not None:
            query = query.where(commands.c.state == state)
        query = query.order_by(commands.c.requested_at.desc(), commands.c.id).limit(limit)
        return await self.store._run(
            "list commands", lambda conn: [command_record(r) for r in conn.execute(query)], write=False
        )

    async def command_by_key(self, idempotency_key: str) -> CommandRecord | None:
        """The command recorded with this idempotency key, if any."""
        query = select(commands).where(commands.c.idempotency_key == idempotency_key)
        return await self.store._run(
            "read a command",
            lambda conn: command_record(r) if (r := conn.execute(query).first()) else None,
            write=False,
        )

    async def count_events(self, meter_id: str) -> int:
        """How many events of a meter are stored."""
        query = select(func.count()).select_from(events).where(events.c.meter_id == meter_id)
        return await self.store._run(
            "count events", lambda conn: int(conn.execute(query).scalar() or 0), write=False
        )

    async def relay_evidence(
        self, meter_ids: Sequence[str] | None = None
    ) -> dict[str, list[tuple[datetime, int, str]]]:
        """What is known about the supply relays, in one transaction for a whole fleet: meter ->
        ``(time, order, "connected"|"disconnected")`` from succeeded disconnect/reconnect commands
        (their finish, ordered by their audit entry) and from the newest stored reading of the
        disconnect control (0-0:96.3.10.255, order -1: a command at the same instant wins)."""
        relay_kinds = ["disconnect", "reconnect"]
        newest_finish = (
            select(commands.c.meter_id, func.max(commands.c.finished_at).label("at"))
            .where(commands.c.kind.in_(relay_kinds), commands.c.state == "succeeded")
            .group_by(commands.c.meter_id)
            .subquery()
        )
        last_commands = (
            select(commands.c.id, commands.c.meter_id, commands.c.kind, commands.c.finished_at)
            .join(
                newest_finish,
                (commands.c.meter_id == newest_finish.c.meter_id)
                & (commands.c.finished_at == newest_finish.c.at),
            )
            .where(commands.c.kind.in_(relay_kinds), commands.c.state == "succeeded")
        )
        control = "0-0:96.3.10*255"
        newest_reading = (
            select(readings.c.meter_id, func.max(readings.c.capture_time).label("at"))
            .where(readings.c.obis == control)
            .group_by(readings.c.meter_id)
            .subquery()
        )
        last_readings = (
            select(readings.c.meter_id, readings.c.capture_time, readings.c.value_kind, readings.c.value_text)
            .join(
                newest_reading,
                (readings.c.meter_id == newest_reading.c.meter_id)
                & (readings.c.capture_time == newest_reading.c.at),
            )
            .where(readings.c.obis == control)
        )
        if meter_ids is not None:
            last_commands = last_commands.where(commands.c.meter_id.in_(list(meter_ids)))
            last_readings = last_readings.where(readings.c.meter_id.in_(list(meter_ids)))

        def job(conn: Connection) -> dict[str, list[tuple[datetime, int, str]]]:
            out: dict[str, list[tuple[datetime, int, str]]] = {}
            rows = list(conn.execute(last_commands))
            order: dict[str, int] = {}
            if rows:
                subjects = [f"command {r.id} {r.kind}" for r in rows]
                for start in range(0, len(subjects), 500):
                    order.update(
                        (subject, seq)
                        for seq, subject in conn.execute(
                            select(audit_log.c.id, audit_log.c.subject).where(
                                audit_log.c.action == "command.succeeded",
                                audit_log.c.subject.in_(subjects[start : start + 500]),
                            )
                        )
                    )
            for r in rows:
                state = "disconnected" if r.kind == "disconnect" else "connected"
                seq = order.get(f"command {r.id} {r.kind}", 0)
                out.setdefault(r.meter_id, []).append((utc(r.finished_at), seq, state))
            for r in conn.execute(last_readings):
                if r.value_kind == "bool" and r.value_text in ("true", "false"):
                    state = "connected" if r.value_text == "true" else "disconnected"
                    out.setdefault(r.meter_id, []).append((utc(r.capture_time), -1, state))
            return out

        return await self.store._run("read the relay states", job, write=False)
