"""The web store (users, sessions, tokens, approvals) on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from headend_support import store_with_meters
from metercom.model.obis import Obis
from metercom.model.reading import Reading
from metercom.service.store import MeterRecord, Store
from metercom.service.store.web import ApprovalStateError, UserConflictError, WebStore

T0 = datetime(2026, 3, 2, 10, tzinfo=UTC)


async def test_users_sessions_and_tokens(store_url: str) -> None:
    async with await Store.open(store_url) as store:
        web = WebStore(store)
        user = await web.add_user("asha", "$argon2id$h1", "consumer", ["m-1"])
        assert (user.role, user.meter_ids, user.disabled) == ("consumer", ("m-1",), False)
        with pytest.raises(UserConflictError):
            await web.add_user("asha", "$argon2id$h2", "viewer")
        await web.add_user("ops", "$argon2id$h3", "operator")
        assert [u.username for u in await web.users()] == ["asha", "ops"]
        assert await web.count_users() == 2

        now = web.now()
        await web.add_session("s1", "asha", "csrf1", client="192.0.2.1", expires_at=now + timedelta(hours=1))
        await web.add_session("s2", "asha", "csrf2", client="192.0.2.1", expires_at=now + timedelta(hours=1))
        await web.add_session("s3", "ops", "csrf3", client="192.0.2.2", expires_at=now + timedelta(hours=1))
        session = await web.session("s1")
        assert session is not None
        assert session.csrf_token == "csrf1"
        assert session.expires_at > now
        later = now + timedelta(minutes=5)
        await web.touch_session("s1", later)
        assert (await web.session("s1")).last_seen_at == later  # type: ignore[union-attr]
        # A new password ends the user's sessions, nobody else's.
        changed = await web.update_user("asha", password_hash="$argon2id$new", meter_ids=["m-1", "m-2"])
        assert changed.meter_ids == ("m-1", "m-2")
        assert await web.session("s1") is None
        assert await web.session("s2") is None
        assert await web.session("s3") is not None
        with pytest.raises(UserConflictError):
            await web.update_user("nobody", role="viewer")
        # Expiry by lifetime or idleness.
        await web.add_session("s4", "ops", "c", client="x", expires_at=now - timedelta(seconds=1))
        assert await web.delete_expired_sessions(now=now, idle_before=now - timedelta(minutes=30)) == 1
        assert await web.session("s3") is not None

        token = await web.add_token("hash-1", name="grafana", username="ops", created_by="asha")
        assert (await web.token_by_hash("hash-1")).id == token.id  # type: ignore[union-attr]
        with pytest.raises(UserConflictError):
            await web.add_token("hash-2", name="x", username="nobody", created_by="asha")
        assert [t.name for t in await web.tokens("ops")] == ["grafana"]
        # Deleting a user takes its sessions and tokens along.
        assert await web.delete_user("ops")
        assert await web.session("s3") is None
        assert await web.token_by_hash("hash-1") is None
        assert not await web.delete_user("ops")


async def test_approvals_are_decided_once(store_url: str) -> None:
    async with await Store.open(store_url) as store:
        web = WebStore(store)
        approval, new = await web.add_approval(
            "disconnect", "m-1", {"reason": "r"}, requested_by="a", request_id="R1"
        )
        assert new
        assert approval.state == "awaiting_approval"
        again, new = await web.add_approval(
            "disconnect", "m-1", {"reason": "r"}, requested_by="a", request_id="R1"
        )
        assert not new
        assert again.id == approval.id
        with pytest.raises(ApprovalStateError):
            await web.add_approval("disconnect", "m-2", {}, requested_by="a", request_id="R1")
        results = await asyncio.gather(
            web.decide_approval(approval.id, approved=True, by="b"),
            web.decide_approval(approval.id, approved=False, by="c", reason="no"),
            return_exceptions=True,
        )
        assert sum(isinstance(r, ApprovalStateError) for r in results) == 1
        decided = await web.approval(approval.id)
        assert decided is not None
        assert decided.state in ("approved", "rejected")
        await web.link_command(approval.id, "cmd-1")
        assert (await web.approval_of_command("cmd-1")).id == approval.id  # type: ignore[union-attr]
        assert [a.id for a in await web.approvals(meter_id="m-1")] == [approval.id]
        assert await web.approvals(state="awaiting_approval") == []


async def test_newest_readings_and_command_counts(store_url: str) -> None:
    async with await store_with_meters(store_url, MeterRecord("m-1", "dlms", "l", "a")) as store:
        web = WebStore(store)
        voltage, energy = Obis.parse("32.7.0"), Obis.parse("1.8.0")
        for minutes, volts in ((0, "230.1"), (15, "231.5")):
            at = T0 + timedelta(minutes=minutes)
            await store.save_readings(
                "m-1",
                [
                    Reading(voltage, Decimal(volts), "V", at),
                    Reading(energy, Decimal(100 + minutes), "kWh", at),
                ],
                capture_time=at,
            )
        latest = await web.latest_readings("m-1", ["1-0:32.7.0*255", "1-0:1.8.0*255", "1-0:14.7.0*255"])
        assert latest["1-0:32.7.0*255"][0] == T0 + timedelta(minutes=15)
        assert latest["1-0:32.7.0*255"][2] == "231.5"
        assert latest["1-0:1.8.0*255"][3] == "kWh"
        assert "1-0:14.7.0*255" not in latest
        record, _ = await store.request_command("read", requested_by="u", meter_id="m-1", idempotency_key="k")
        await store.request_command("read", requested_by="u", meter_id="m-1")
        assert await web.command_counts() == {("read", "requested"): 2}
        assert (await web.command_by_key("k")).id == record.id  # type: ignore[union-attr]
        assert record.id in [c.id for c in await web.recent_commands(meter_id="m-1")]
        assert await web.relay_evidence() == {}
        # Relay evidence: the newest disconnect-control reading, and relay commands that succeeded.
        control = Obis.parse("0.0.96.3.10.255")
        await store.save_readings("m-1", [Reading(control, True, None, T0)], capture_time=T0)
        await store.save_readings(
            "m-1",
            [Reading(control, False, None, T0 - timedelta(hours=1))],
            capture_time=T0 - timedelta(hours=1),
        )
        assert await web.relay_evidence() == {"m-1": [(T0, -1, "connected")]}
        for kind in ("disconnect", "reconnect"):
            command, _ = await store.request_command(kind, requested_by="u", meter_id="m-1")
            await store.start_command(command.id)
            await store.finish_command(command.id, succeeded=True, result={})
        evidence = (await web.relay_evidence(["m-1"]))["m-1"]
        commands_ = sorted(e for e in evidence if e[1] >= 0)
        assert [e[2] for e in commands_] == ["disconnected", "connected"]  # audited in that order
        assert max(evidence)[2] == "connected"
        assert await web.relay_evidence(["other"]) == {}
