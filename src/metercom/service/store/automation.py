"""The store's side of automation: prepaid ledger rows and alarm episodes.

Rule: each function is one store transaction (through the :class:`~.store.Store`'s worker, like
every store method), so a batch of ledger rows lands entirely or not at all. Ledger rows are
the flat rows of :meth:`~metercom.service.prepaid.PrepaidAccount.to_records`; inserting a row
whose ``(account_id, seq)`` is already stored with the same content is a no-op (a retried
write), a different content or a top-up key used twice raises
:class:`~metercom.errors.StoreError`, so the ledger can never fork. Alarm episodes are upserted
whole by ``alarm_id`` (the alarm centre's record is the authority while the process runs; the
table is what survives it).

Theory of operation: :class:`AutomationStore` wraps an open store; the head-end's automation
calls :meth:`~AutomationStore.save_ledger` after every change of an account and
:meth:`~AutomationStore.save_alarms` for episodes that changed, and rebuilds from
:meth:`~AutomationStore.ledger` and :meth:`~AutomationStore.alarm_rows` at start.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from metercom.errors import StoreError
from metercom.service.store.store import Store
from metercom.service.store.tables import alarms, prepaid_ledger
from metercom.service.store.types import utc

__all__ = ["LEDGER_COLUMNS", "AutomationStore"]

#: Ledger columns as :meth:`PrepaidAccount.to_records` names them (``at`` is ISO text there):
#: every column of the table but the store's own ``recorded_at`` stamp.
LEDGER_COLUMNS = tuple(c.name for c in prepaid_ledger.columns if c.name != "recorded_at")
_ALARM_COLUMNS = tuple(c.name for c in alarms.columns)


def _row_in(record: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    row = {name: record.get(name) for name in LEDGER_COLUMNS}
    at = row["at"]
    if not isinstance(at, str | datetime):
        raise StoreError(f"prepaid ledger row without a time: {dict(record)}")
    row["at"] = utc(datetime.fromisoformat(at) if isinstance(at, str) else at)
    row["recorded_at"] = now
    return row


def _row_out(row: Any) -> dict[str, Any]:
    out = {name: getattr(row, name) for name in LEDGER_COLUMNS}
    out["at"] = out["at"].isoformat()
    return out


class AutomationStore:
    """Prepaid ledger and alarm tables of one :class:`~.store.Store`; see the module docstring."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- prepaid ledger

    async def save_ledger(self, records: Sequence[Mapping[str, Any]]) -> int:
        """Insert ledger rows (one transaction); returns how many were new."""
        if not records:
            return 0
        now = self.store._now()
        rows = [_row_in(r, now) for r in records]

        def job(conn: Connection) -> int:
            added = 0
            for row in rows:
                old = conn.execute(
                    select(prepaid_ledger).where(
                        prepaid_ledger.c.account_id == row["account_id"], prepaid_ledger.c.seq == row["seq"]
                    )
                ).first()
                if old is not None:
                    same = all(
                        (getattr(old, k) == row[k]) if k != "at" else utc(old.at) == row["at"]
                        for k in LEDGER_COLUMNS
                    )
                    if not same:
                        raise StoreError(
                            f"prepaid ledger of account {row['account_id']}: event {row['seq']} is already "
                            "stored with different content; another writer changed this account"
                        )
                    continue
                conn.execute(insert(prepaid_ledger).values(**row))
                added += 1
            return added

        return await self.store._run("save prepaid ledger rows", job)

    async def ledger(self, account_id: str) -> list[dict[str, Any]]:
        """The stored rows of an account, in sequence order, as ``to_records`` gave them."""
        query = (
            select(prepaid_ledger)
            .where(prepaid_ledger.c.account_id == account_id)
            .order_by(prepaid_ledger.c.seq)
        )
        return await self.store._run(
            "read a prepaid ledger", lambda conn: [_row_out(r) for r in conn.execute(query)], write=False
        )

    # -- alarms

    async def save_alarms(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Upsert alarm episodes (rows with the ``alarms`` table's columns but ``updated_at``)."""
        if not rows:
            return
        now = self.store._now()
        values = [{**{k: r.get(k) for k in _ALARM_COLUMNS}, "updated_at": now} for r in rows]

        def job(conn: Connection) -> None:
            for row in values:
                done = conn.execute(
                    update(alarms).where(alarms.c.alarm_id == row["alarm_id"]).values(**row)
                ).rowcount
                if done == 0:
                    conn.execute(insert(alarms).values(**row))

        await self.store._run("save alarms", job)

    async def alarm_rows(
        self,
        *,
        state: str | None = None,
        active: bool | None = None,
        meter_id: str | None = None,
        kind: str | None = None,
        alarm_id: str | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """Stored episodes, most recent occurrence first."""
        conds = []
        if state is not None:
            conds.append(alarms.c.state == state)
        if active is not None:
            conds.append(alarms.c.cleared_at.is_(None) if active else alarms.c.cleared_at.is_not(None))
        if meter_id is not None:
            conds.append(alarms.c.meter_id == meter_id)
        if kind is not None:
            conds.append(alarms.c.kind == kind)
        if alarm_id is not None:
            conds.append(alarms.c.alarm_id == alarm_id)
        query = select(alarms).where(*conds).order_by(alarms.c.last_at.desc(), alarms.c.alarm_id).limit(limit)
        return await self.store._run(
            "list alarms", lambda conn: [dict(r._mapping) for r in conn.execute(query)], write=False
        )


def dumps(value: object) -> str:
    """Compact JSON for the alarm table's JSON columns."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
