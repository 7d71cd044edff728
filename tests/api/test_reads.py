"""Reads through the real app: fleet, meters, live values, readings and profiles (JSON and
CSV), load curves with peak shares, events, alarms; and the RFC 9457 errors."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import time, timedelta
from decimal import Decimal

from metercom.model.obis import Obis
from metercom.model.reading import Reading

from .conftest import START


async def test_fleet_and_meter_summaries(api_env) -> None:
    async with api_env() as env:
        viewer = await env.bearer("viewer")
        answer = await viewer.get("/api/v1/fleet")
        assert answer.status_code == 200, answer.text
        fleet = answer.json()
        assert fleet["config_version"] == 1
        assert [m["id"] for m in fleet["meters"]] == ["iec-1", "house-1", "flat-2"]
        house = next(m for m in fleet["meters"] if m["id"] == "house-1")
        assert house["state"] == "ok"
        assert house["protocol"] == "dlms"
        assert house["groups"] == ["dlms"]
        assert house["prepaid_account"] == "acc-1"
        # An empty prepaid account: prepaid cut the supply at the first reading; the relay state
        # shown is the one the meter reports.
        assert not env.devices["house-1"].meter.connected
        assert house["relay"] == "disconnected"
        flat = next(m for m in fleet["meters"] if m["id"] == "flat-2")
        assert env.devices["flat-2"].meter.connected
        assert flat["relay"] == "connected"
        assert house["last_read"] is not None
        iec = next(m for m in fleet["meters"] if m["id"] == "iec-1")
        assert iec["relay"] is None
        assert iec["prepaid_account"] is None
        assert {line["id"] for line in fleet["lines"]} >= {"optical-1"}
        assert fleet["alarms_active"] == 1  # prepaid's disconnect
        (alarm,) = (await viewer.get("/api/v1/alarms", params={"active": "true"})).json()
        assert alarm["meter_id"] == "house-1"
        assert alarm["state"] == "open"

        detail = (await viewer.get("/api/v1/meters/house-1")).json()
        assert detail["plans"] == ["live"]
        assert "1-0:32.7.0*255" in detail["objects"]
        assert detail["events"] == 0
        assert len((await viewer.get("/api/v1/meters")).json()) == 3


async def test_live_values_are_the_newest_stored(api_env) -> None:
    async with api_env() as env:
        viewer = await env.bearer("viewer")
        live = (await viewer.get("/api/v1/meters/flat-2/live")).json()
        assert live["at"] is not None
        assert [p["phase"] for p in live["phases"]] == [1, 2, 3]
        for phase in live["phases"]:
            assert 180 < phase["voltage_v"] < 260
            assert phase["current_a"] >= 0
        # The simulated meter gives the power factor of L1 only (53.7.0, 73.7.0 are not stored).
        assert -1 <= live["phases"][0]["power_factor"] <= 1
        assert live["phases"][1]["power_factor"] is None
        assert live["total"]["power_w"] == float(
            (await env.store.readings("flat-2", obis="1-0:1.7.0*255"))[-1].value
        )  # type: ignore[arg-type]
        assert 49 < live["total"]["frequency_hz"] < 51
        assert live["total"]["energy_import_kwh"] > 0
        stored = await env.store.readings("flat-2", obis="1-0:32.7.0*255")
        assert live["phases"][0]["voltage_v"] == float(stored[-1].value)  # type: ignore[arg-type]
        # The IEC meter gives only registers: no phases, nulls.
        iec = (await viewer.get("/api/v1/meters/iec-1/live")).json()
        assert iec["phases"] == []
        assert iec["total"]["power_w"] is None
        assert iec["total"]["energy_import_kwh"] is not None


async def test_readings_json_and_csv(api_env) -> None:
    async with api_env() as env:
        viewer = await env.bearer("viewer")
        answer = await viewer.get("/api/v1/meters/house-1/readings", params={"obis": "1.8.0"})
        rows = answer.json()["readings"]
        assert len(rows) == 1
        assert rows[0]["obis"] == "1-0:1.8.0*255"
        assert rows[0]["unit"] in ("Wh", "kWh")
        answer = await viewer.get("/api/v1/meters/house-1/readings", params={"format": "csv"})
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/csv")
        assert "attachment" in answer.headers["content-disposition"]
        table = list(csv.reader(io.StringIO(answer.text)))
        assert table[0] == ["meter_id", "obis", "capture_time", "value", "unit", "status"]
        stored = await env.store.readings("house-1")
        assert len(table) == 1 + len(stored)
        assert {r[1] for r in table[1:]} == {r.obis for r in stored}
        # Accept: text/csv works too; a time range without a zone is refused.
        answer = await viewer.get("/api/v1/meters/house-1/readings", headers={"Accept": "text/csv"})
        assert answer.headers["content-type"].startswith("text/csv")
        answer = await viewer.get("/api/v1/meters/house-1/readings", params={"since": "2026-03-02T00:00:00"})
        assert answer.status_code == 422
        assert answer.headers["content-type"] == "application/problem+json"
        later = (START + timedelta(days=1)).isoformat()
        answer = await viewer.get("/api/v1/meters/house-1/readings", params={"since": later})
        assert answer.json()["readings"] == []


async def test_profile_json_and_csv(api_env) -> None:
    async with api_env() as env:
        viewer = await env.bearer("viewer")
        capture = START - timedelta(hours=1)
        from metercom.service.store import ProfileRow

        await env.store.save_profile_rows(
            "flat-2",
            "1-0:99.1.0*255",
            [
                ProfileRow(
                    capture + timedelta(minutes=15 * i),
                    {"1-0:1.8.0*255": Decimal(1000 + i)},
                    "ok",
                    {"1-0:1.8.0*255": "Wh"},
                )
                for i in range(4)
            ],
        )
        answer = await viewer.get("/api/v1/meters/flat-2/profile", params={"profile": "1.0.99.1.0.255"})
        body = answer.json()
        assert body["profile"] == "1-0:99.1.0*255"
        assert body["columns"] == ["1-0:1.8.0*255"]
        assert [r["values"]["1-0:1.8.0*255"] for r in body["rows"]] == [1000, 1001, 1002, 1003]
        answer = await viewer.get("/api/v1/meters/flat-2/profile?profile=1.0.99.1.0.255&format=csv")
        table = list(csv.reader(io.StringIO(answer.text)))
        assert table[0] == ["capture_time", "status", "1-0:1.8.0*255"]
        assert [r[2] for r in table[1:]] == ["1000", "1001", "1002", "1003"]


async def test_load_curve_day_and_week_with_peak_shares(api_env) -> None:
    async with api_env(read=False) as env:
        viewer = await env.bearer("viewer")
        day = START.replace(hour=0) - timedelta(days=7)  # Monday a week before, 00:00 UTC
        energy = Obis.parse("1.8.0")
        # 1 kWh in every hour: the register rises by 1 per hour for two days.
        readings = [
            (day + timedelta(hours=h), Reading(energy, Decimal(100 + h), "kWh", day + timedelta(hours=h)))
            for h in range(49)
        ]
        for at, reading in readings:
            await env.store.save_readings("iec-1", [reading], capture_time=at)
        answer = await viewer.get(
            "/api/v1/meters/iec-1/load",
            params={"period": "day", "end": (day + timedelta(hours=5)).isoformat()},
        )
        load = answer.json()
        assert answer.status_code == 200, load
        assert len(load["buckets"]) == 24
        assert all(b["kwh"] == 1.0 for b in load["buckets"])
        assert [b["peak"] for b in load["buckets"]] == [False] * 7 + [True] * 16 + [False]
        assert load["total_kwh"] == 24.0
        assert load["peak_kwh"] == 16.0
        assert load["offpeak_kwh"] == 8.0
        assert load["peak_share"] == round(16 / 24, 4)
        week = (
            await viewer.get("/api/v1/meters/iec-1/load", params={"period": "week", "end": day.isoformat()})
        ).json()
        assert len(week["buckets"]) == 7
        assert [b["kwh"] for b in week["buckets"][:2]] == [24.0, 24.0]
        assert week["buckets"][2]["kwh"] is None  # the readings end at Wednesday 00:00
        assert week["total_kwh"] == 48.0
        month = (
            await viewer.get("/api/v1/meters/iec-1/load", params={"period": "month", "end": day.isoformat()})
        ).json()
        assert len(month["buckets"]) == 28  # February 2026
        bad = await viewer.get("/api/v1/meters/iec-1/load", params={"period": "year"})
        assert bad.status_code == 422
        assert bad.json()["type"].endswith("/validation")


async def test_problems_for_unknown_routes_methods_and_meters(api_env) -> None:
    async with api_env(read=False) as env:
        viewer = await env.bearer("viewer")
        for method, path, status in (
            ("GET", "/api/v1/nothing", 404),
            ("DELETE", "/api/v1/fleet", 405),
            ("GET", "/api/v1/meters/nope", 404),
            ("GET", "/api/v1/meters/nope/live", 404),
            ("GET", "/api/v1/commands/nope", 404),
            ("GET", "/api/v1/prepaid/accounts/nope", 404),
        ):
            answer = await viewer.request(method, path)
            assert answer.status_code == status, (path, answer.text)
            assert answer.headers["content-type"] == "application/problem+json"
            problem = answer.json()
            assert problem["status"] == status
            assert problem["instance"] == path
            assert problem["type"].startswith("https://metercom.invalid/problems/")
            assert problem["title"]
            assert problem["detail"]
        answer = await env.client().get("/api/v1/fleet")
        assert answer.status_code == 401
        assert answer.json()["type"].endswith("/unauthorized")
        answer = await viewer.post("/api/v1/meters/house-1/commands", json={"kind": "read", "bogus": 1})
        assert answer.status_code == 403  # a viewer: refused before the body matters
        schema = (await env.client().get("/api/v1/openapi.json")).json()
        assert "/api/v1/meters/{meter_id}/commands" in schema["paths"]
        assert (await env.client().get("/docs")).status_code == 404


async def test_unexpected_errors_are_problems_without_internals(api_env, monkeypatch) -> None:
    async with api_env(read=False) as env:
        admin = await env.bearer("admin")

        async def broken() -> None:
            raise RuntimeError("SELECT password_hash FROM web_users -- secret internals")

        monkeypatch.setattr(env.app.state.ctx.web, "users", broken)
        answer = await admin.get("/api/v1/users")
        assert answer.status_code == 500
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["type"].endswith("/internal")
        assert "secret" not in answer.text
        assert "Traceback" not in answer.text
        # The schema documents both ways in, the problems and the response models.
        schema = (await env.client().get("/api/v1/openapi.json")).json()
        assert set(schema["components"]["securitySchemes"]) == {"bearer", "session"}
        assert "Problem" in schema["components"]["schemas"]
        operation = schema["paths"]["/api/v1/fleet"]["get"]
        assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Fleet"
        }
        assert "application/problem+json" in operation["responses"]["default"]["content"]
        assert "security" not in schema["paths"]["/api/v1/auth/login"]["post"]


async def test_live_converts_every_value_by_its_stored_unit(api_env) -> None:
    """An IEC 62056-21 readout gives kW and kWh, a DLMS meter W and Wh, a single-phase meter
    12/11.7.0, a three-phase Modbus meter (pmtr3) per-phase power and energy only: /live answers
    in W, V, A, Hz and kWh whatever the meter sent; a value in another quantity's unit is null."""
    async with api_env(read=False) as env:
        viewer = await env.bearer("viewer")
        at = START - timedelta(minutes=5)

        async def save(meter_id: str, rows: list[tuple[str, str, str | None]]) -> None:
            readings = [Reading(Obis.parse(code), Decimal(value), unit, at) for code, value, unit in rows]
            await env.store.save_readings(meter_id, readings, capture_time=at)

        # iec-1: the IEC meter's readout (1.7.0(0.464*kW) ...), one phase of a three-phase code set.
        await save(
            "iec-1",
            [
                ("1.8.0", "191.494", "kWh"),
                ("1.7.0", "0.464", "kW"),
                ("32.7.0", "229.3", "V"),
                ("31.7.0", "2.02", "A"),
                ("21.7.0", "0.464", "kW"),
                ("13.7.0", "0.99", None),
                ("14.7.0", "50.01", "Hz"),
            ],
        )
        iec = (await viewer.get("/api/v1/meters/iec-1/live")).json()
        assert iec["phases"] == [
            {"phase": 1, "voltage_v": 229.3, "current_a": 2.02, "power_w": 464.0, "power_factor": None}
        ]
        assert iec["total"] == {
            "power_w": 464.0,
            "power_factor": 0.99,
            "frequency_hz": 50.01,
            "energy_import_kwh": 191.494,
        }
        # house-1: a single-phase DLMS meter (IS 15959 / PZEM-004T codes) in W, Wh, mA.
        await save(
            "house-1",
            [
                ("1-0:1.8.0*255", "19385919", "Wh"),
                ("1-0:1.7.0*255", "37", "W"),
                ("1-0:12.7.0*255", "232.44", "V"),
                ("1-0:11.7.0*255", "193", "mA"),
                ("1-0:13.7.0*255", "0.825", None),
                ("1-0:14.7.0*255", "50.03", "Hz"),
            ],
        )
        house = (await viewer.get("/api/v1/meters/house-1/live")).json()
        assert house["phases"] == [
            {"phase": 1, "voltage_v": 232.44, "current_a": 0.193, "power_w": 37.0, "power_factor": 0.825}
        ]
        assert house["total"]["energy_import_kwh"] == 19385.919
        assert house["at"] == at.isoformat().replace("+00:00", "Z")
        # flat-2: three phases with per-phase power (kW on one) and import registers, no totals;
        # a "power" in var is not active power.
        await save(
            "flat-2",
            [
                ("1-0:32.7.0*255", "230", "V"),
                ("1-0:52.7.0*255", "0.231", "kV"),
                ("1-0:72.7.0*255", "229", "V"),
                ("1-0:21.7.0*255", "100", "W"),
                ("1-0:41.7.0*255", "0.2", "kW"),
                ("1-0:61.7.0*255", "300", "W"),
                ("1-0:21.8.0*255", "1000", "Wh"),
                ("1-0:41.8.0*255", "2", "kWh"),
                ("1-0:61.8.0*255", "3", "kWh"),
                ("1-0:16.7.0*255", "5", "var"),
            ],
        )
        flat = (await viewer.get("/api/v1/meters/flat-2/live")).json()
        assert [(p["phase"], p["voltage_v"], p["power_w"]) for p in flat["phases"]] == [
            (1, 230.0, 100.0),
            (2, 231.0, 200.0),
            (3, 229.0, 300.0),
        ]
        assert flat["total"]["power_w"] == 600.0
        assert flat["total"]["energy_import_kwh"] == 6.0


async def _apply_profile_plan(env) -> None:
    """The live plan with a block load profile (applied through the API, as an administrator)."""
    admin = await env.bearer("admin")
    text = env.text.replace(
        'id = "live"\n', 'id = "live"\nprofiles = [{ obis = "1-0:99.1.0*255", history = "1d" }]\n'
    )
    answer = await admin.post("/api/v1/config", content=text, headers={"Content-Type": "application/toml"})
    assert answer.status_code == 201, answer.text


async def test_load_curve_from_interval_profile_rows_split_at_peak_edges(api_env) -> None:
    """A block load profile's interval energy (1.29.0, Wh per 30 minutes) makes the curve
    where no register readings are stored; an hour across the peak edge (07:30) is split."""
    from metercom.service.config_web import WebSettings
    from metercom.service.store import ProfileRow

    async with api_env(WebSettings(peak_start=time(7, 30)), read=False) as env:
        await _apply_profile_plan(env)
        viewer = await env.bearer("viewer")
        day = START.replace(hour=0) - timedelta(days=7)
        rows = [
            ProfileRow(
                day + timedelta(minutes=30 * (i + 1)),
                {"1-0:1.29.0*255": Decimal(500), "1-0:12.27.0*255": Decimal(230)},
                "ok",
                {"1-0:1.29.0*255": "Wh", "1-0:12.27.0*255": "V"},
            )
            for i in range(48)
        ]
        await env.store.save_profile_rows("flat-2", "1-0:99.1.0*255", rows)
        load = (
            await viewer.get("/api/v1/meters/flat-2/load", params={"period": "day", "end": day.isoformat()})
        ).json()
        assert [b["kwh"] for b in load["buckets"]] == [1.0] * 24
        assert not any(b["partial"] for b in load["buckets"])
        seven = load["buckets"][7]
        assert (seven["peak_kwh"], seven["offpeak_kwh"]) == (0.5, 0.5)
        assert load["peak_hours"] == "07:30-23:00"
        assert load["peak_kwh"] == 15.5
        assert load["total_kwh"] == 24.0
        # The flat-2 meter has no profile rows on the next day: nothing is shown there.
        week = (
            await viewer.get("/api/v1/meters/flat-2/load", params={"period": "week", "end": day.isoformat()})
        ).json()
        assert [b["kwh"] for b in week["buckets"]] == [24.0, None, None, None, None, None, None]
        assert week["buckets"][0]["partial"] is False


async def test_load_curve_from_cumulative_profile_columns(api_env) -> None:
    from metercom.service.store import ProfileRow

    async with api_env(read=False) as env:
        await _apply_profile_plan(env)
        viewer = await env.bearer("viewer")
        day = START.replace(hour=0) - timedelta(days=7)
        rows = [
            ProfileRow(
                day + timedelta(minutes=15 * i),
                {"1-0:1.8.0*255": Decimal(100_000 + 500 * i)},
                "ok",
                {"1-0:1.8.0*255": "Wh"},
            )
            for i in range(97)
        ]
        await env.store.save_profile_rows("flat-2", "1-0:99.1.0*255", rows)
        load = (
            await viewer.get("/api/v1/meters/flat-2/load", params={"period": "day", "end": day.isoformat()})
        ).json()
        assert [b["kwh"] for b in load["buckets"]] == [2.0] * 24
        assert load["total_kwh"] == 48.0


async def test_load_curve_current_and_first_buckets_are_partial(api_env) -> None:
    """A fresh head-end: register readings since 08:30, now 10:20. The hour where the data
    starts and the current one show the energy measured so far, flagged partial; today's daily
    bucket too (it is not over)."""
    async with api_env(read=False) as env:
        viewer = await env.bearer("viewer")
        energy = Obis.parse("1.8.0")
        await asyncio.sleep(20 * 60)  # the virtual clock: now 10:20
        for minutes in (0, 30, 60, 75, 90, 105):  # 08:30 .. 10:15, 1 kWh per hour
            at = START - timedelta(minutes=90) + timedelta(minutes=minutes)
            reading = Reading(energy, Decimal(100) + Decimal(minutes) / 60, "kWh", at)
            await env.store.save_readings("iec-1", [reading], capture_time=at)
        load = (await viewer.get("/api/v1/meters/iec-1/load", params={"period": "day"})).json()
        by_hour = {b["start"][11:13]: b for b in load["buckets"]}
        assert by_hour["07"]["kwh"] is None
        assert (by_hour["08"]["kwh"], by_hour["08"]["partial"]) == (0.5, True)
        assert (by_hour["09"]["kwh"], by_hour["09"]["partial"]) == (1.0, False)
        assert (by_hour["10"]["kwh"], by_hour["10"]["partial"]) == (0.25, True)  # so far
        assert by_hour["11"]["kwh"] is None
        assert load["total_kwh"] == 1.75
        week = (await viewer.get("/api/v1/meters/iec-1/load", params={"period": "week"})).json()
        today = week["buckets"][0]  # START is a Monday
        assert (today["kwh"], today["partial"]) == (1.75, True)
        assert week["buckets"][1]["kwh"] is None
