"""Configuration (validate, apply, history) and the Prometheus endpoint, through the real app."""

from __future__ import annotations

import re

from metercom.api import WebSettings

_SAMPLE = re.compile(
    r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? -?[0-9.e+]+$'
)


async def test_validate_and_apply_configuration(api_env) -> None:
    async with api_env(read=False) as env:
        admin, csrf = await env.login("admin")
        headers = {"X-CSRF-Token": csrf, "Content-Type": "application/toml"}
        good = env.text.replace('id = "iec-1"', 'id = "iec-1"\ndescription = "the cellar"')
        answer = await admin.post("/api/v1/config/validate", content=good, headers=headers)
        assert answer.json() == {"ok": True, "errors": []}
        bad = good.replace('every = "1h"', 'every = "1h"\nevry = "2h"').replace(
            'protocol = "iec21"', 'protocol = "iec99"'
        )
        answer = await admin.post("/api/v1/config/validate", content=bad, headers=headers)
        result = answer.json()
        assert result["ok"] is False
        assert len(result["errors"]) == 2
        lines = bad.splitlines()
        for error in result["errors"]:
            assert error["line"] is not None
            assert ("evry" in lines[error["line"] - 1]) or ("iec99" in lines[error["line"] - 1]), error
        syntax = await admin.post("/api/v1/config/validate", content="[[meters]\n", headers=headers)
        assert syntax.json()["ok"] is False
        assert syntax.json()["errors"][0]["line"] == 1
        # Applying an invalid file changes nothing.
        answer = await admin.post("/api/v1/config", content=bad, headers=headers)
        assert answer.status_code == 422
        assert len(answer.json()["errors"]) == 2
        assert env.headend.config_version == 1
        answer = await admin.post("/api/v1/config", content=good, headers=headers)
        assert answer.status_code == 201, answer.text
        assert answer.json()["version"] == 2
        assert env.headend.config_version == 2
        assert env.headend.config.meter("iec-1").description == "the cellar"
        detail = (await admin.get("/api/v1/meters/iec-1")).json()
        assert detail["description"] == "the cellar"
        versions = (await admin.get("/api/v1/config/versions")).json()
        assert [v["version"] for v in versions] == [2, 1]
        assert versions[0]["actor"] == "admin"
        assert "text" not in versions[0] or versions[0]["text"] is None
        assert (await admin.get("/api/v1/config/versions/2")).json()["text"] == good
        assert (await admin.get("/api/v1/config/versions/9")).status_code == 404
        log = [(e.actor, e.result) for e in await env.store.audit_log(action="config.apply")]
        assert log == [("test", "ok"), ("admin", "invalid"), ("admin", "ok")]


async def test_web_section_is_validated(api_env) -> None:
    async with api_env(read=False) as env:
        admin = await env.bearer("admin")
        text = (
            env.text
            + '\n[web]\ndisconnect_approval = true\npeak_start = "25:00"\n'
            + 'listen = "nowhere"\nlogin_window = "1s"\n'
        )
        result = (await admin.post("/api/v1/config/validate", content=text)).json()
        assert result["ok"] is False
        keys = sorted(e["key"] for e in result["errors"])
        assert keys == ["web.listen", "web.login_window", "web.peak_start"]
        ok = (
            env.text
            + '\n[web]\ndisconnect_approval = true\ntimezone = "Europe/Berlin"\npeak_start = "06:30"\n'
        )
        assert (await admin.post("/api/v1/config/validate", content=ok)).json()["ok"] is True
        assert (await admin.post("/api/v1/config", content=ok)).status_code == 201
        web = env.headend.config.web
        assert web is not None
        assert web.disconnect_approval
        assert web.timezone == "Europe/Berlin"


def _samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        assert _SAMPLE.match(line), line
        name, value = line.rsplit(" ", 1)
        out[name] = float(value)
    return out


async def test_metrics_exposition(api_env) -> None:
    async with api_env() as env:
        operator = await env.bearer("operator")
        answer = await operator.post(
            "/api/v1/meters/flat-2/commands", json={"kind": "read", "args": {"objects": ["1.8.0"]}}
        )
        await env.headend.commands.wait_idle()
        done = (await operator.get(f"/api/v1/commands/{answer.json()['id']}")).json()
        assert done["status"] == "succeeded", done["error"]
        await env.headend.schedules.stop()
        await env.headend.wait_idle()
        answer = await env.client().get("/metrics")  # public by default
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        text = answer.text
        assert text.endswith("\n")
        samples = _samples(text)
        status = {row.meter_id: row for row in env.headend.status()}
        dlms_ok = status["house-1"].reads_ok + status["flat-2"].reads_ok
        assert samples['metercom_reads_total{protocol="dlms",result="ok"}'] == dlms_ok >= 2
        assert samples['metercom_reads_total{protocol="iec21",result="ok"}'] == status["iec-1"].reads_ok >= 1
        assert samples['metercom_reads_total{protocol="iec21",result="failed"}'] == 0
        assert samples['metercom_meters{state="ok"}'] == 3
        assert samples['metercom_meters{state="quarantined"}'] == 0
        assert samples['metercom_commands_total{kind="read",status="succeeded"}'] == 1
        assert samples['metercom_commands_total{kind="disconnect",status="succeeded"}'] >= 1  # prepaid's
        assert samples["metercom_config_version"] == 1
        assert samples["metercom_alarms_active"] == 1
        assert samples["metercom_last_cycle_duration_seconds"] >= 0
        assert 'metercom_last_read_duration_seconds{meter="flat-2"}' in samples
        for family in ("metercom_forward_backlog", "metercom_forward_oldest_age_seconds"):
            assert f"# TYPE {family} gauge" in text
        for line in text.splitlines():
            if line.startswith("# TYPE"):
                assert line.split()[3] in ("counter", "gauge")


async def test_metrics_can_require_a_login(api_env) -> None:
    async with api_env(WebSettings(metrics_public=False), read=False) as env:
        assert (await env.client().get("/metrics")).status_code == 401
        assert (await (await env.bearer("consumer")).get("/metrics")).status_code == 403
        assert (await (await env.bearer("viewer")).get("/metrics")).status_code == 200
