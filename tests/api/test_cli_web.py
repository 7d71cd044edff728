"""``metercom serve`` with the web server in its loop, ``metercom user``, and the demo's users."""

from __future__ import annotations

import asyncio
import io
import re
import socket
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from metercom.cli.demo import DemoFleet, demo_config_text, run_fleet_demo
from metercom.cli.headend import default_store, serve
from metercom.cli.main import main
from metercom.errors import ConfigError
from metercom.service.meters import LinkPool
from metercom.service.store import Store
from metercom.service.store.web import WebStore


def test_user_add_list_passwd_remove(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "s.db")
    monkeypatch.setattr("sys.stdin", io.StringIO("a long password\n"))
    assert main(["user", "add", "asha", "--role", "operator", "--password-stdin", "--store", store]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("another password\n"))
    assert (
        main(
            [
                "user",
                "add",
                "bo",
                "--role",
                "consumer",
                "--meter",
                "m-1",
                "--password-stdin",
                "--store",
                store,
            ]
        )
        == 0
    )
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["user", "add", "cy", "--role", "viewer", "--password-stdin", "--store", store]) == 2
    monkeypatch.setattr("sys.stdin", io.StringIO("a long password\n"))
    assert main(["user", "add", "asha", "--role", "viewer", "--password-stdin", "--store", store]) == 2
    monkeypatch.setattr("sys.stdin", io.StringIO("a long password\n"))
    assert main(["user", "add", "dee", "--role", "consumer", "--password-stdin", "--store", store]) == 2
    capsys.readouterr()
    assert main(["user", "list", "--store", store]) == 0
    assert capsys.readouterr().out.splitlines() == ["asha\toperator\t-", "bo\tconsumer\tm-1"]
    monkeypatch.setattr("sys.stdin", io.StringIO("a newer password\n"))
    assert main(["user", "passwd", "asha", "--password-stdin", "--store", store]) == 0
    assert main(["user", "remove", "bo", "--store", store]) == 0
    assert main(["user", "remove", "bo", "--store", store]) == 2
    assert main(["user", "list"]) == 2  # no store given

    async def check() -> None:
        async with await Store.open(store) as opened:
            user = await WebStore(opened).user("asha")
            assert user is not None
            assert user.password_hash.startswith("$argon2id$")
            from argon2 import PasswordHasher

            assert PasswordHasher().verify(user.password_hash, "a newer password")
            actions = [(e.actor, e.action, e.subject) for e in await opened.audit_log(action="user.*")]
            assert actions == [
                ("metercom user", "user.add", "asha"),
                ("metercom user", "user.add", "bo"),
                ("metercom user", "user.change", "asha"),
                ("metercom user", "user.delete", "bo"),
            ]

    asyncio.run(check())


@pytest.mark.realtime
async def test_serve_runs_the_web_server_in_its_loop_and_stops_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = DemoFleet(1)
    await fleet.start()
    config = tmp_path / "fleet.toml"
    config.write_text(demo_config_text(fleet, every_s=1), encoding="utf-8")
    store_url = default_store(config)
    ready, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        serve(
            config,
            store_url,
            poll_s=0,
            stop_timeout_s=2.0,
            ready=ready,
            stop=stop,
            headend_options={"links": LinkPool(fleet.open)},
            web="127.0.0.1:0",
        )
    )
    try:
        await asyncio.wait_for(ready.wait(), 10)
        err = capsys.readouterr().err
        match = re.search(r"dashboard and REST API at (http://127\.0\.0\.1:\d+)", err)
        assert match, err
        base = match[1]
        async with await Store.open(store_url) as store:
            from argon2 import PasswordHasher

            await WebStore(store).add_user("ops", PasswordHasher().hash("a long password"), "operator")
        async with httpx.AsyncClient(base_url=base) as client:
            assert (await client.get("/api/v1/fleet")).status_code == 401
            login = await client.post(
                "/api/v1/auth/login", json={"username": "ops", "password": "a long password"}
            )
            assert login.status_code == 200
            fleet_view = (await client.get("/api/v1/fleet")).json()
            assert [m["id"] for m in fleet_view["meters"]] == ["iec-01"]
            page = await client.get("/")
            assert page.status_code == 200
            assert "text/html" in page.headers["content-type"]
            assert page.headers["x-content-type-options"] == "nosniff"
        # A second server on the same port is a clean configuration error.
        port = int(base.rsplit(":", 1)[1])
        with pytest.raises(ConfigError, match="cannot listen"):
            await serve(
                config,
                store_url,
                poll_s=0,
                web=f"127.0.0.1:{port}",
                headend_options={"links": LinkPool(fleet.open)},
            )
        stop.set()
        assert await asyncio.wait_for(task, 15) == 0
        with socket.socket() as probe:  # the port is free again
            assert probe.connect_ex(("127.0.0.1", port)) != 0
    finally:
        stop.set()
        await asyncio.gather(task, return_exceptions=True)
        await fleet.close()


@pytest.mark.realtime
async def test_demo_serves_the_dashboard_with_one_time_passwords(tmp_path: Path) -> None:
    out = io.StringIO()
    stop = asyncio.Event()

    async def use_it() -> None:
        for _ in range(200):
            if "one-time passwords" in out.getvalue() and "consumer" in out.getvalue():
                break
            await asyncio.sleep(0.05)
        text = out.getvalue()
        base = re.search(r"dashboard and REST API: (http://\S+)", text)[1]  # type: ignore[index]
        password = re.search(r"^consumer\s+consumer\s+(\S+)$", text, re.MULTILINE)[1]  # type: ignore[index]
        async with httpx.AsyncClient(base_url=base) as client:
            login = await client.post(
                "/api/v1/auth/login", json={"username": "consumer", "password": password}
            )
            assert login.status_code == 200, login.text
            assert login.json()["user"]["meter_ids"] == ["dlms-01"]
            account = (await client.get("/api/v1/prepaid/accounts/acc-1")).json()
            assert account["total_topped_up"] == "10.00"  # the demo's opening credit
            assert (await client.get("/api/v1/meters/iec-01")).status_code == 403
        stop.set()

    user = asyncio.create_task(use_it())
    result = await run_fleet_demo(
        out,
        duration_s=None,
        every_s=2,
        iec21=1,
        dlms=1,
        modbus=0,
        directory=tmp_path,
        stop=stop,
        web="127.0.0.1:0",
    )
    await user
    assert result.integrity_ok


@pytest.mark.realtime
async def test_demo_fleet_every_meter_has_live_voltage_current_and_power(tmp_path: Path) -> None:
    """After one read of each demo meter, /live has voltage, current and power for every
    protocol (the plans ask for the codes the meters' profiles give: the PZEM-004T's 12.7.0 and
    11.7.0, the IEC readout's kW scaled to W), and only the prepaid DLMS meter offers its relay."""
    out = io.StringIO()
    stop = asyncio.Event()
    seen: dict[str, dict[str, object]] = {}

    async def use_it() -> None:
        try:
            for _ in range(400):
                if "one-time passwords" in out.getvalue() and "consumer" in out.getvalue():
                    break
                await asyncio.sleep(0.05)
            text = out.getvalue()
            base = re.search(r"dashboard and REST API: (http://\S+)", text)[1]  # type: ignore[index]
            password = re.search(r"^admin\s+administrator\s+(\S+)$", text, re.MULTILINE)[1]  # type: ignore[index]
            async with httpx.AsyncClient(base_url=base) as client:
                login = await client.post(
                    "/api/v1/auth/login", json={"username": "admin", "password": password}
                )
                assert login.status_code == 200, login.text
                for _ in range(600):
                    fleet = (await client.get("/api/v1/fleet")).json()
                    if all(m["last_read"] is not None for m in fleet["meters"]):
                        break
                    await asyncio.sleep(0.05)
                for meter in fleet["meters"]:
                    live = (await client.get(f"/api/v1/meters/{meter['id']}/live")).json()
                    seen[meter["id"]] = {"meter": meter, "live": live}
                account = (await client.get("/api/v1/prepaid/accounts/acc-1")).json()
                seen["acc-1"] = account
        finally:
            stop.set()

    user = asyncio.create_task(use_it())
    result = await run_fleet_demo(
        out,
        duration_s=None,
        every_s=2,
        iec21=1,
        dlms=2,
        modbus=1,
        directory=tmp_path,
        stop=stop,
        web="127.0.0.1:0",
    )
    await user
    assert result.integrity_ok
    assert set(seen) == {"iec-01", "dlms-01", "dlms-02", "modbus-01", "acc-1"}, out.getvalue()
    for meter_id in ("iec-01", "dlms-01", "dlms-02", "modbus-01"):
        live = seen[meter_id]["live"]
        assert isinstance(live, dict)
        (phase,) = live["phases"]
        assert 180 < phase["voltage_v"] < 260, (meter_id, live)
        assert phase["current_a"] is not None, (meter_id, live)
        assert phase["current_a"] >= 0, (meter_id, live)
        assert phase["power_w"] is not None, (meter_id, live)
        power = live["total"]["power_w"]
        assert power is not None, (meter_id, live)
        assert live["total"]["energy_import_kwh"] is not None, (meter_id, live)
    # Watts, not the IEC meter's kW: the stored reading is "0.464 kW", the API says 464 W.
    async with await Store.open(result.store_path) as store:
        for meter_id in ("iec-01", "modbus-01"):
            at = datetime.fromisoformat(seen[meter_id]["live"]["at"])  # type: ignore[index]
            (stored,) = [
                r for r in await store.readings(meter_id, obis="1-0:1.7.0*255") if r.capture_time == at
            ]
            factor = {"kW": 1000, "W": 1}[str(stored.unit)]
            assert seen[meter_id]["live"]["total"]["power_w"] == pytest.approx(float(stored.value) * factor)  # type: ignore[arg-type,index]
    capable = {m: seen[m]["meter"]["relay_capable"] for m in ("iec-01", "dlms-01", "dlms-02", "modbus-01")}  # type: ignore[index]
    assert capable == {"iec-01": False, "dlms-01": True, "dlms-02": False, "modbus-01": False}
    tariff = seen["acc-1"]["tariff"]  # type: ignore[index]
    assert [a["amount"] for a in tariff["amounts"]] == ["5.00", "10.00", "30.00", "100.00"]
