"""Logins, sessions, tokens, CSRF, the login rate limit and the role matrix, through the real app."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from metercom.api import WebSettings
from metercom.api.context import COOKIE
from metercom.api.security import hash_secret

from .conftest import PASSWORD


async def test_login_me_logout_and_session_cookie(api_env) -> None:
    async with api_env(read=False) as env:
        client = env.client()
        answer = await client.post("/api/v1/auth/login", json={"username": "operator", "password": PASSWORD})
        assert answer.status_code == 200
        body = answer.json()
        assert body["user"] == {"username": "operator", "role": "operator", "meter_ids": []}
        cookie = answer.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE}=")
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
        assert "Path=/" in cookie
        assert "Secure" not in cookie  # plain http, no [web] secure_cookies
        # The session id is stored hashed only.
        session_id = client.cookies[COOKIE]
        assert await env.web.session(session_id) is None
        stored = await env.web.session(hash_secret(session_id))
        assert stored is not None
        assert stored.username == "operator"
        me = (await client.get("/api/v1/auth/me")).json()
        assert me == body
        # Logging out needs the CSRF token like any unsafe request, then ends the session.
        assert (await client.post("/api/v1/auth/logout")).status_code == 403
        answer = await client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": body["csrf_token"]})
        assert answer.status_code == 204
        assert await env.web.session(hash_secret(session_id)) is None
        client.cookies.set(COOKIE, session_id)  # a replayed cookie is dead
        assert (await client.get("/api/v1/auth/me")).status_code == 401
        actions = [(e.actor, e.action, e.result) for e in await env.store.audit_log(action="auth.*")]
        assert actions == [("operator", "auth.login", "ok"), ("operator", "auth.logout", "ok")]


async def test_wrong_password_unknown_user_and_disabled_user_are_401(api_env) -> None:
    async with api_env(read=False) as env:
        client = env.client()
        for username, password in (("operator", "wrong password!"), ("nobody", PASSWORD)):
            answer = await client.post(
                "/api/v1/auth/login", json={"username": username, "password": password}
            )
            assert answer.status_code == 401
            assert answer.json()["detail"] == "wrong username or password"  # the same for both
            assert COOKIE not in client.cookies
        await env.web.update_user("viewer", disabled=True)
        answer = await client.post("/api/v1/auth/login", json={"username": "viewer", "password": PASSWORD})
        assert answer.status_code == 401
        failed = [e.actor for e in await env.store.audit_log(action="auth.login") if e.result == "failed"]
        assert failed == ["operator", "nobody", "viewer"]


async def test_csrf_is_required_for_cookie_sessions_not_for_tokens(api_env) -> None:
    async with api_env(read=False) as env:
        client, csrf = await env.login("admin")
        body = {"username": "newbie", "password": "a long password", "role": "viewer"}
        answer = await client.post("/api/v1/users", json=body)
        assert answer.status_code == 403
        assert answer.json()["type"].endswith("/csrf")
        answer = await client.post("/api/v1/users", json=body, headers={"X-CSRF-Token": csrf + "x"})
        assert answer.status_code == 403
        assert await env.web.user("newbie") is None
        answer = await client.post("/api/v1/users", json=body, headers={"X-CSRF-Token": csrf})
        assert answer.status_code == 201
        # Reads need no token; a bearer token needs none for changes either.
        assert (await client.get("/api/v1/users")).status_code == 200
        machine = await env.bearer("admin")
        answer = await machine.patch("/api/v1/users/newbie", json={"role": "operator"})
        assert answer.status_code == 200
        assert answer.json()["role"] == "operator"
        # Another session's token does not fit this session.
        other, other_csrf = await env.login("admin")
        answer = await client.patch(
            "/api/v1/users/newbie", json={"role": "viewer"}, headers={"X-CSRF-Token": other_csrf}
        )
        assert answer.status_code == 403
        del other


async def test_login_rate_limit_per_user_and_per_address_on_the_clock(api_env, vclock) -> None:
    settings = WebSettings(login_max_failures=3, login_window=timedelta(minutes=10))
    async with api_env(settings, read=False) as env:
        client = env.client()

        async def attempt(username: str, password: str, address: str = "192.0.2.10") -> tuple[int, dict]:
            import httpx

            transport = httpx.ASGITransport(app=env.app, client=(address, 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                answer = await c.post("/api/v1/auth/login", json={"username": username, "password": password})
                return answer.status_code, dict(answer.headers) | {"_json": answer.json()}

        for _ in range(3):
            assert (await attempt("operator", "bad password"))[0] == 401
        status, headers = await attempt("operator", PASSWORD)  # right password, still refused
        assert status == 429
        retry = int(headers["retry-after"])
        assert 0 < retry <= 600
        assert headers["_json"]["retry_after_s"] == retry
        assert headers["content-type"] == "application/problem+json"
        # Per username: from another address too. The address is blocked for other names as well.
        assert (await attempt("operator", PASSWORD, "198.51.100.7"))[0] == 429
        assert (await attempt("viewer", PASSWORD))[0] == 429
        assert (await attempt("viewer", PASSWORD, "198.51.100.7"))[0] == 200
        # After the window (virtual time), the right password works again.
        await asyncio.sleep(retry + 1)
        assert (await attempt("operator", PASSWORD))[0] == 200
        refused = [
            e for e in await env.store.audit_log(action="auth.login", limit=1000) if e.result == "refused"
        ]
        assert len(refused) == 3
        del client


async def test_session_idle_timeout_and_lifetime_on_the_clock(api_env) -> None:
    settings = WebSettings(session_idle_timeout=timedelta(minutes=30), session_lifetime=timedelta(hours=2))
    async with api_env(settings, read=False) as env:
        # No collection meanwhile: store work runs in real time and could let the virtual clock
        # jump to the next timer while a request waits for the store.
        await env.headend.schedules.stop()
        idle, _ = await env.login("viewer")
        busy, _ = await env.login("viewer")
        for _ in range(3):  # 3 x 25 min: busy keeps its session alive, idle does not
            await asyncio.sleep(25 * 60)
            assert (await busy.get("/api/v1/auth/me")).status_code == 200
        assert (await idle.get("/api/v1/auth/me")).status_code == 401
        await asyncio.sleep(25 * 60)  # 100 min
        assert (await busy.get("/api/v1/auth/me")).status_code == 200
        await asyncio.sleep(25 * 60)  # 125 min: past the 2 h lifetime
        answer = await busy.get("/api/v1/auth/me")
        assert answer.status_code == 401
        assert "expired" in answer.json()["detail"]


async def test_password_change_ends_sessions_and_tokens_follow_their_user(api_env) -> None:
    async with api_env(read=False) as env:
        admin = await env.bearer("admin")
        session, _ = await env.login("viewer")
        token_answer = await admin.post("/api/v1/tokens", json={"name": "grafana", "username": "viewer"})
        assert token_answer.status_code == 201
        created = token_answer.json()
        assert created["token"].startswith("mct_")
        assert token_answer.headers["cache-control"] == "no-store"
        machine = env.client(Authorization=f"Bearer {created['token']}")
        assert (await machine.get("/api/v1/fleet")).status_code == 200
        listed = (await admin.get("/api/v1/tokens")).json()
        assert all("token" not in t for t in listed)
        answer = await admin.patch("/api/v1/users/viewer", json={"password": "another long password"})
        assert answer.status_code == 200
        assert (await session.get("/api/v1/auth/me")).status_code == 401
        assert (await machine.get("/api/v1/fleet")).status_code == 200  # tokens are not passwords
        assert (await admin.delete(f"/api/v1/tokens/{created['id']}")).status_code == 204
        assert (await machine.get("/api/v1/fleet")).status_code == 401
        assert (await env.client(Authorization="Bearer").get("/api/v1/fleet")).status_code == 401
        assert (await env.client(Authorization="Basic abc").get("/api/v1/fleet")).status_code == 401
        log = [(e.actor, e.action, e.subject) for e in await env.store.audit_log(action="token.*")]
        assert log == [
            ("admin", "token.create", f"token {created['id']}"),
            ("admin", "token.revoke", f"token {created['id']}"),
        ]
        assert created["token"] not in str(await env.store.audit_log(limit=1000))


async def test_user_administration(api_env) -> None:
    async with api_env(read=False) as env:
        admin = await env.bearer("admin")
        answer = await admin.post(
            "/api/v1/users", json={"username": "c2", "password": "twelve chars!", "role": "consumer"}
        )
        assert answer.status_code == 422  # a consumer needs a meter
        answer = await admin.post(
            "/api/v1/users",
            json={"username": "c2", "password": "twelve chars!", "role": "consumer", "meter_ids": ["x"]},
        )
        assert answer.status_code == 422
        assert "unknown meters: x" in answer.json()["detail"]
        answer = await admin.post(
            "/api/v1/users",
            json={"username": "c2", "password": "twelve chars!", "role": "consumer", "meter_ids": ["flat-2"]},
        )
        assert answer.status_code == 201
        assert answer.json()["meter_ids"] == ["flat-2"]
        assert "password" not in answer.text
        again = await admin.post(
            "/api/v1/users", json={"username": "c2", "password": "twelve chars!", "role": "viewer"}
        )
        assert again.status_code == 409
        short = await admin.post(
            "/api/v1/users", json={"username": "c3", "password": "short", "role": "viewer"}
        )
        assert short.status_code == 422
        stored = await env.web.user("c2")
        assert stored is not None
        assert stored.password_hash.startswith("$argon2id$")
        c2, _ = await env.login("c2", "twelve chars!")
        assert (await c2.get("/api/v1/meters/flat-2")).status_code == 200
        assert (await admin.patch("/api/v1/users/admin", json={"role": "viewer"})).status_code == 409
        assert (await admin.delete("/api/v1/users/admin")).status_code == 409
        assert (await admin.delete("/api/v1/users/c2")).status_code == 204
        assert (await c2.get("/api/v1/meters/flat-2")).status_code == 401
        assert (await admin.delete("/api/v1/users/c2")).status_code == 404
        users = [u["username"] for u in (await admin.get("/api/v1/users")).json()]
        assert users == ["admin", "consumer", "operator", "operator2", "viewer"]
        log = [(e.actor, e.action, e.subject) for e in await env.store.audit_log(action="user.*")]
        assert log == [("admin", "user.add", "c2"), ("admin", "user.delete", "c2")]


# -- the role matrix -----------------------------------------------------------------------------------

ROLES = ("viewer", "operator", "administrator", "consumer")
ADMIN_ONLY = {"administrator"}
OPERATORS = {"operator", "administrator"}
READERS = {"viewer", "operator", "administrator"}
EVERYONE = set(ROLES)

# (method, path, json body, roles allowed). Bodies of changes are invalid on purpose (422 once
# allowed), so the matrix changes nothing; 403 is the only answer for a role not allowed.
MATRIX = [
    ("GET", "/api/v1/fleet", None, READERS),
    ("GET", "/api/v1/meters", None, EVERYONE),
    ("GET", "/api/v1/meters/house-1", None, EVERYONE),
    ("GET", "/api/v1/meters/flat-2", None, READERS),
    ("GET", "/api/v1/meters/house-1/live", None, EVERYONE),
    ("GET", "/api/v1/meters/flat-2/live", None, READERS),
    ("GET", "/api/v1/meters/house-1/readings", None, EVERYONE),
    ("GET", "/api/v1/meters/flat-2/readings", None, READERS),
    ("GET", "/api/v1/meters/house-1/profile", None, EVERYONE),
    ("GET", "/api/v1/meters/house-1/load", None, EVERYONE),
    ("GET", "/api/v1/meters/flat-2/load", None, READERS),
    ("GET", "/api/v1/meters/house-1/events", None, EVERYONE),
    ("GET", "/api/v1/alarms", None, READERS),
    ("POST", "/api/v1/alarms/x/ack", {"note": 5}, OPERATORS),
    ("POST", "/api/v1/meters/flat-2/commands", {"kind": "explode"}, OPERATORS),
    ("POST", "/api/v1/meters/house-1/commands", {"kind": "explode"}, OPERATORS),
    ("GET", "/api/v1/commands", None, READERS),
    ("POST", "/api/v1/commands/x/approve", None, OPERATORS),
    ("GET", "/api/v1/prepaid/accounts", None, EVERYONE),
    ("GET", "/api/v1/prepaid/accounts/acc-1", None, EVERYONE),
    ("GET", "/api/v1/prepaid/accounts/acc-1/statements/2026-03", None, EVERYONE),
    ("POST", "/api/v1/prepaid/accounts/acc-1/top-ups", {"amount": "1"}, EVERYONE - {"viewer"}),
    ("POST", "/api/v1/config/validate", None, ADMIN_ONLY),
    ("GET", "/api/v1/config/versions", None, READERS),
    ("GET", "/api/v1/config/versions/1", None, ADMIN_ONLY),
    ("GET", "/api/v1/users", None, ADMIN_ONLY),
    ("POST", "/api/v1/users", {"username": "!"}, ADMIN_ONLY),
    ("PATCH", "/api/v1/users/viewer", {"role": "king"}, ADMIN_ONLY),
    ("DELETE", "/api/v1/users/nobody", None, ADMIN_ONLY),
    ("POST", "/api/v1/tokens", {}, ADMIN_ONLY),
    ("GET", "/api/v1/tokens", None, ADMIN_ONLY),
    ("GET", "/api/v1/audit", None, ADMIN_ONLY),
    ("GET", "/api/v1/auth/me", None, EVERYONE),
]


@pytest.mark.parametrize("role", ROLES)
async def test_role_matrix(api_env, role: str) -> None:
    username = {"administrator": "admin"}.get(role, role)
    async with api_env(read=False) as env:
        client = await env.bearer(username)
        anonymous = env.client()
        for method, path, body, allowed in MATRIX:
            answer = await client.request(method, path, json=body)
            if role in allowed:
                assert answer.status_code not in (401, 403), (role, method, path, answer.text)
                assert answer.status_code < 500, (role, method, path, answer.text)
            else:
                assert answer.status_code == 403, (role, method, path, answer.text)
                assert answer.headers["content-type"] == "application/problem+json"
            assert (await anonymous.request(method, path, json=body)).status_code == 401, path
        # Nothing in the matrix changed anything.
        assert [c for c in await env.store.commands() if c.requested_by == username] == []
        assert [u.username for u in await env.web.users()] == [
            "admin",
            "consumer",
            "operator",
            "operator2",
            "viewer",
        ]
        assert [e.action for e in await env.store.audit_log(action="user.*")] == []
