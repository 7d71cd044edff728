"""Commands through the real app and the real head-end: 202 with the record, progress read
back, disconnect/reconnect confirmation, second approval of disconnects, idempotent requests;
prepaid top-ups (idempotent on the payment reference) and statements."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from metercom.api import WebSettings


async def _done(env, client, command_id: str) -> dict:
    await env.headend.commands.wait_idle()
    answer = await client.get(f"/api/v1/commands/{command_id}")
    assert answer.status_code == 200
    return answer.json()


async def test_read_now_is_recorded_run_and_read_back(api_env) -> None:
    async with api_env(read=False) as env:
        operator = await env.bearer("operator")
        answer = await operator.post(
            "/api/v1/meters/flat-2/commands", json={"kind": "read", "args": {"objects": ["1.8.0"]}}
        )
        assert answer.status_code == 202, answer.text
        record = answer.json()
        assert record["status"] in ("requested", "running")
        assert record["requested_by"] == "operator"
        assert record["approval"] is None
        done = await _done(env, operator, record["id"])
        assert done["status"] == "succeeded", done
        assert done["finished_at"] is not None
        assert await env.store.readings("flat-2", obis="1-0:1.8.0*255")
        # Bad arguments are refused before anything is recorded.
        bad = await operator.post(
            "/api/v1/meters/flat-2/commands", json={"kind": "read", "args": {"objects": ["x.y"]}}
        )
        assert bad.status_code == 422
        bad = await operator.post("/api/v1/meters/flat-2/commands", json={"kind": "top_up"})
        assert bad.status_code == 422
        mine = [c for c in await env.store.commands() if c.requested_by == "operator"]
        assert [c.kind for c in mine] == ["read"]
        listed = (await operator.get("/api/v1/commands", params={"meter_id": "flat-2"})).json()
        assert record["id"] in [c["id"] for c in listed]


async def test_disconnect_needs_confirmation_then_switches_and_reads_back(api_env) -> None:
    async with api_env(read=False) as env:
        operator = await env.bearer("operator")
        device = env.devices["flat-2"]
        assert device.meter.connected
        answer = await operator.post("/api/v1/meters/flat-2/commands", json={"kind": "disconnect"})
        assert answer.status_code == 409
        assert answer.json()["type"].endswith("/confirmation-required")
        assert device.meter.connected
        body = {"kind": "disconnect", "confirm": True, "args": {"reason": "maintenance"}, "request_id": "T-1"}
        answer = await operator.post("/api/v1/meters/flat-2/commands", json=body)
        assert answer.status_code == 202
        command_id = answer.json()["id"]
        done = await _done(env, operator, command_id)
        assert done["status"] == "succeeded"
        assert done["result"] == {"relay": "open", "confirmed": True}
        assert not device.meter.connected
        meter = (await operator.get("/api/v1/meters/flat-2")).json()
        assert meter["relay"] == "disconnected"
        # The same request id again: the same command, not a second one.
        again = await operator.post("/api/v1/meters/flat-2/commands", json=body)
        assert again.status_code == 202
        assert again.json()["id"] == command_id
        answer = await operator.post(
            "/api/v1/meters/flat-2/commands", json={"kind": "reconnect", "confirm": True}
        )
        done = await _done(env, operator, answer.json()["id"])
        assert done["status"] == "succeeded"
        assert device.meter.connected
        assert (await operator.get("/api/v1/meters/flat-2")).json()["relay"] == "connected"
        audit = [
            (e.actor, e.action)
            for e in await env.store.audit_log(action="command.*", limit=1000)
            if "disconnect" in e.subject
        ]
        assert ("operator", "command.requested") in audit
        assert ("operator", "command.succeeded") in audit


async def test_disconnect_waits_for_a_second_persons_approval(api_env) -> None:
    async with api_env(WebSettings(disconnect_approval=True), read=False) as env:
        operator, csrf = await env.login("operator")
        operator2 = await env.bearer("operator2")
        device = env.devices["flat-2"]
        body = {"kind": "disconnect", "confirm": True, "args": {"reason": "tamper"}}
        answer = await operator.post(
            "/api/v1/meters/flat-2/commands", json=body, headers={"X-CSRF-Token": csrf}
        )
        assert answer.status_code == 202
        held = answer.json()
        assert held["status"] == "awaiting_approval"
        assert held["approval"]["state"] == "awaiting_approval"
        await env.headend.commands.wait_idle()
        assert device.meter.connected  # nothing reached the meter
        assert [c for c in await env.store.commands() if c.requested_by == "operator"] == []
        assert (await operator.get(f"/api/v1/commands/{held['id']}")).json()["status"] == "awaiting_approval"
        pending = (await operator.get("/api/v1/commands", params={"status": "awaiting_approval"})).json()
        assert [c["id"] for c in pending] == [held["id"]]
        # Not by the one who asked; not by a viewer.
        mine = await operator.post(f"/api/v1/commands/{held['id']}/approve", headers={"X-CSRF-Token": csrf})
        assert mine.status_code == 403
        viewer = await env.bearer("viewer")
        assert (await viewer.post(f"/api/v1/commands/{held['id']}/approve")).status_code == 403
        approved = await operator2.post(f"/api/v1/commands/{held['id']}/approve")
        assert approved.status_code == 202, approved.text
        record = approved.json()
        assert record["id"] != held["id"]
        assert record["requested_by"] == "operator"
        assert record["approval"]["approved_by"] == "operator2"
        done = await _done(env, operator2, record["id"])
        assert done["status"] == "succeeded"
        assert not device.meter.connected
        # The held id now shows the command; approving twice is a conflict and runs nothing.
        assert (await operator2.get(f"/api/v1/commands/{held['id']}")).json()["id"] == record["id"]
        assert (await operator2.post(f"/api/v1/commands/{held['id']}/approve")).status_code == 409
        disconnects = [
            c for c in await env.store.commands() if c.kind == "disconnect" and c.requested_by == "operator"
        ]
        assert len(disconnects) == 1
        # A rejected one never runs. Reconnects need no approval.
        answer = await operator2.post("/api/v1/meters/flat-2/commands", json=body)
        rejected = await operator.post(
            f"/api/v1/commands/{answer.json()['id']}/reject",
            json={"reason": "wrong meter"},
            headers={"X-CSRF-Token": csrf},
        )
        assert rejected.status_code == 200
        assert rejected.json()["status"] == "rejected"
        assert (
            await operator.post(
                f"/api/v1/commands/{answer.json()['id']}/approve", headers={"X-CSRF-Token": csrf}
            )
        ).status_code == 409
        answer = await operator2.post(
            "/api/v1/meters/flat-2/commands", json={"kind": "reconnect", "confirm": True}
        )
        assert answer.json()["status"] in ("requested", "running")
        assert (await _done(env, operator2, answer.json()["id"]))["status"] == "succeeded"
        actions = [(e.actor, e.action) for e in await env.store.audit_log(action="command.*", limit=1000)]
        for entry in (
            ("operator", "command.approval_requested"),
            ("operator2", "command.approved"),
            ("operator", "command.rejected"),
        ):
            assert entry in actions


async def test_prepaid_top_up_is_idempotent_and_reconnects(api_env) -> None:
    async with api_env() as env:
        consumer, csrf = await env.login("consumer")
        account = (await consumer.get("/api/v1/prepaid/accounts/acc-1")).json()
        assert account["meter_id"] == "house-1"
        assert Decimal(account["balance_units"]) <= 0
        assert account["relay"] == "disconnected"
        assert account["currency"] == "INR"
        assert not env.devices["house-1"].meter.connected
        headers = {"X-CSRF-Token": csrf}
        body = {"amount": "10.00", "request_id": "UPI-0001"}
        first = await consumer.post("/api/v1/prepaid/accounts/acc-1/top-ups", json=body, headers=headers)
        assert first.status_code == 201, first.text
        out = first.json()
        assert out["command"]["status"] == "succeeded"
        assert out["command"]["requested_by"] == "consumer"
        assert out["account"]["total_topped_up"] == "10.00"
        assert out["account"]["total_topped_up_minor"] == 1000
        assert out["account"]["last_top_up"]["credit_units"] == "650"
        assert env.devices["house-1"].meter.connected  # the credit brought the supply back
        assert out["account"]["relay"] == "connected"
        again = await consumer.post("/api/v1/prepaid/accounts/acc-1/top-ups", json=body, headers=headers)
        assert again.status_code == 200
        assert again.json()["command"]["id"] == out["command"]["id"]
        assert again.json()["account"]["credited_units"] == out["account"]["credited_units"]
        # The same reference with another amount is a conflict, not a second credit.
        other = await consumer.post(
            "/api/v1/prepaid/accounts/acc-1/top-ups",
            json={"amount": "30", "request_id": "UPI-0001"},
            headers=headers,
        )
        assert other.status_code == 409
        # By meter id, by an operator, in minor units.
        operator = await env.bearer("operator")
        answer = await operator.post(
            "/api/v1/prepaid/accounts/house-1/top-ups", json={"amount_minor": 500, "request_id": "UPI-2"}
        )
        assert answer.status_code == 201
        assert answer.json()["account"]["total_topped_up"] == "15.00"
        # An amount the tariff table does not list: a problem naming the accepted amounts,
        # nothing recorded, nothing credited; the account says what it accepts.
        before = (await operator.get("/api/v1/prepaid/accounts/acc-1")).json()
        assert [a["amount"] for a in before["tariff"]["amounts"]] == ["5.00", "10.00", "30.00", "100.00"]
        assert [a["credit_units"] for a in before["tariff"]["amounts"]] == ["500", "650", "900", "1175"]
        assert before["tariff"]["kind"] == "table"
        assert before["tariff"]["between_rows"] == "exact"
        assert before["tariff"]["unit_wh"] == 10
        commands_before = len(await env.store.commands())
        refused = await consumer.post(
            "/api/v1/prepaid/accounts/acc-1/top-ups",
            json={"amount": "7.50", "request_id": "UPI-0003"},
            headers=headers,
        )
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        problem = refused.json()
        assert problem["type"].endswith("/top-up-refused")
        assert "7.50 INR is not in the tariff table" in problem["detail"]
        assert "accepted amounts: 5.00, 10.00, 30.00, 100.00" in problem["detail"]
        assert problem["accepted_amounts"] == ["5.00", "10.00", "30.00", "100.00"]
        after = (await operator.get("/api/v1/prepaid/accounts/acc-1")).json()
        assert after["credited_units"] == before["credited_units"]
        assert after["total_topped_up"] == before["total_topped_up"]
        assert len(await env.store.commands()) == commands_before
        # The reference was not used up: the same payment with a listed amount goes through.
        fixed = await consumer.post(
            "/api/v1/prepaid/accounts/acc-1/top-ups",
            json={"amount": "5", "request_id": "UPI-0003"},
            headers=headers,
        )
        assert fixed.status_code == 201, fixed.text
        for bad in (
            {"amount": "1.001", "request_id": "x"},
            {"amount": "-5", "request_id": "x"},
            {"amount": "5", "amount_minor": 500, "request_id": "x"},
            {"request_id": "x"},
        ):
            answer = await operator.post("/api/v1/prepaid/accounts/acc-1/top-ups", json=bad)
            assert answer.status_code == 422, bad
        statement = (await consumer.get("/api/v1/prepaid/accounts/acc-1/statements/2026-03")).json()
        assert statement["top_ups"] == 3
        assert statement["total_topped_up_minor"] == 2000
        assert statement["balanced"] is True
        assert (await consumer.get("/api/v1/prepaid/accounts/acc-1/statements/2026-13")).status_code == 422
        # The consumer sees only their own account and meter.
        assert [a["id"] for a in (await consumer.get("/api/v1/prepaid/accounts")).json()] == ["acc-1"]
        assert [m["id"] for m in (await consumer.get("/api/v1/meters")).json()] == ["house-1"]
        assert (await consumer.get("/api/v1/prepaid/accounts/flat-2")).status_code == 403
        top_ups = [c for c in await env.store.commands() if c.kind == "top_up"]
        assert len(top_ups) == 3
        assert all(c.state.value == "succeeded" for c in top_ups)


async def test_prepaid_consumption_is_counted_under_frequent_reads(api_env) -> None:
    """Reads every 5 s (the demo's cadence): the simulated meter's import register advances with
    the load (a whole minute of the load model at a time) and prepaid charges it, so
    ``consumed_units`` grows within minutes (it stayed 0 when the register froze under reads
    less than a load-model step apart)."""
    async with api_env() as env:
        operator = await env.bearer("operator")
        answer = await operator.post(
            "/api/v1/prepaid/accounts/acc-1/top-ups", json={"amount": "100", "request_id": "UPI-9"}
        )
        assert answer.status_code == 201, answer.text
        assert env.devices["house-1"].meter.connected
        for _ in range(36):  # three minutes
            await asyncio.sleep(5)
            assert (await env.headend.read_now("house-1", "live")).ok
        registers = await env.store.readings("house-1", obis="1-0:1.8.0*255")
        values = [int(r.value) for r in registers]  # type: ignore[call-overload]
        assert values == sorted(values)
        account = (await operator.get("/api/v1/prepaid/accounts/acc-1")).json()
        assert Decimal(account["consumed_units"]) > 0, account
        # Charged from the first reading after the top-up: 1 unit per 10 Wh.
        assert account["energy_wh"] > 0
        assert Decimal(account["consumed_units"]) == Decimal(account["energy_wh"]) / 10
        assert account["energy_wh"] <= values[-1] - values[0]
