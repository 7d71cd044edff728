"""The dashboard in headless Chromium against the real app and head-end (``harness.py``): log in,
the fleet, a meter's live and load charts, a disconnect with its confirmation and the relay
state it changes, a prepaid top-up, alarms, roles, the consumer view on a phone, logout."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from harness import (
    BROKEN_METER,
    DESKTOP,
    IEC_METERS,
    PHONE,
    PREPAID_ACCOUNT,
    PREPAID_METER,
    RELAY_METER,
    Dashboard,
    DashboardServer,
    in_ci,
    log_in,
)

try:
    from playwright.sync_api import expect
except ImportError:  # CI must have it (conftest fails there); elsewhere the tests are skipped
    if in_ci():
        raise
    pytest.skip("the Python package 'playwright' is not installed", allow_module_level=True)


def balance(page: Any, selector: str) -> Decimal:
    return Decimal(page.locator(selector).get_attribute("data-value"))


def test_login_problem_then_fleet_with_filter(page: Any, dashboard: Dashboard) -> None:
    page.goto(dashboard.url + "/")
    expect(page).to_have_url(re.compile(r"#/login$"))
    expect(page.locator("#topbar")).to_be_hidden()
    page.get_by_label("Username").fill("operator")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    problem = page.locator("#login-errors [role=alert]")
    expect(problem).to_contain_text("wrong username or password")
    expect(problem).to_contain_text("HTTP 401")

    page.get_by_label("Password").fill(dashboard.passwords["operator"])
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"#/fleet$"))
    rows = page.locator("#fleet-table tbody tr[data-meter]")
    expect(rows).to_have_count(len(dashboard.meters))
    for meter_id in dashboard.meters:
        expect(page.locator(f'#fleet-table tr[data-meter="{meter_id}"]')).to_be_visible()
    broken = page.locator(f'#fleet-table tr[data-meter="{BROKEN_METER}"]')
    expect(broken.locator("[data-state=quarantined]")).to_be_visible()
    expect(broken.locator(".col-error")).to_contain_text("authentication")
    expect(broken.locator(".col-alarms")).not_to_have_text("0")
    household = page.locator(f'#fleet-table tr[data-meter="{PREPAID_METER}"]')
    expect(household).to_have_attribute("data-state", "ok")
    expect(household.locator(".col-relay")).to_have_text("Supply on")
    expect(page.locator("#tile-meters .tile-value")).to_have_text(str(len(dashboard.meters)))
    expect(page.locator("#alarm-count")).to_be_visible()

    page.get_by_label("Filter").fill("house")
    expect(rows).to_have_count(2)
    expect(page.locator("#fleet-count")).to_have_text(f"2 of {len(dashboard.meters)} meters shown")
    page.get_by_label("Filter").fill("")
    page.get_by_label("State").select_option("quarantined")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-meter", BROKEN_METER)
    page.get_by_label("State").select_option("")
    expect(rows).to_have_count(len(dashboard.meters))


def test_meter_page_draws_live_values_and_load_curves(operator_page: Any) -> None:
    page = operator_page
    page.locator("a.meter-link", has_text=PREPAID_METER).click()
    expect(page).to_have_url(re.compile(rf"#/meter/{PREPAID_METER}$"))
    expect(page.locator("h1")).to_have_text(PREPAID_METER)
    # Live values: three phases in the table and a line per phase with its points.
    expect(page.locator('#live-table td[data-q="voltage_v"]')).to_have_count(3)
    voltage = page.locator('#live-table td[data-q="voltage_v"][data-phase="1"]').inner_text()
    assert 200 < float(voltage) < 260, voltage
    expect(page.locator("#live-frequency .metric-value")).to_contain_text("Hz")
    points = page.locator("#live-chart svg circle.point")
    expect(points.first).to_be_attached()
    # Power: a line per phase and the total.
    expect(page.locator("#live-chart svg path.series-line")).to_have_count(4)
    expect(page.locator("#live .legend")).to_have_text(re.compile(r"L1\s*L2\s*L3\s*Total"))
    expect(page.locator("#live-chart svg .axis-unit")).to_have_text("W")
    first = points.count()
    # Polled: the next collected sample adds points to the session's lines.
    expect(points).not_to_have_count(first, timeout=25_000)
    page.locator('[data-quantity="voltage_v"]').click()
    expect(page.locator("#live-chart svg .axis-unit")).to_have_text("V")
    expect(page.locator("#live-chart svg path.series-line")).to_have_count(3)

    # Load curves. Today so far (the current hour partly measured, drawn as such), then
    # yesterday: 24 hourly bars, 07:00-23:00 IST peak.
    expect(page.locator("#load-chart svg rect.bar").first).to_be_attached()
    expect(page.locator('#load-chart svg rect.bar-partial[data-partial="true"]').first).to_be_attached()
    expect(page.locator("#load .legend")).to_contain_text("Partly measured")
    expect(page.locator("#load .legend")).to_contain_text("Peak (07:00\u201323:00)")
    expect(page.locator("#load .legend")).to_contain_text("Off-peak")
    page.get_by_role("button", name="Earlier period").click()
    expect(page.get_by_role("button", name="Later period")).to_be_enabled()
    expect(page.locator("#load-chart svg rect.bar-peak")).to_have_count(16)
    expect(page.locator("#load-chart svg rect.bar-offpeak")).to_have_count(8)
    expect(page.locator("#load-chart svg rect.bar-partial")).to_have_count(0)
    expect(page.locator("#load .fig-peak")).to_contain_text("%")
    # Last month (the harness stores ten weeks of history): a stacked bar per day.
    page.locator('#load [data-period="month"]').click()
    expect(page.locator('#load [data-period="month"]')).to_have_attribute("aria-checked", "true")
    page.get_by_role("button", name="Earlier period").click()
    stacks = page.locator("#load-chart svg g.bar-stack")
    expect(stacks.nth(27)).to_be_attached()
    assert stacks.count() in (28, 29, 30, 31)
    expect(page.locator("#load-chart svg rect.bar-missing")).to_have_count(0)
    total = page.locator("#load-total").inner_text()
    assert float(total.split()[0].replace(",", "")) > 100, total
    # The events card loaded (the generic meter keeps no event log in this plan).
    expect(page.locator("#events")).not_to_be_empty()


def test_disconnect_asks_for_confirmation_and_changes_the_relay(operator_page: Any) -> None:
    page = operator_page
    page.goto(page.url.split("#")[0] + f"#/meter/{RELAY_METER}")
    relay = page.locator("#meter-relay")
    expect(relay).to_have_text("Supply on")
    dialog = page.locator("#confirm-dialog")

    page.locator("#cmd-disconnect").click()
    expect(dialog).to_be_visible()
    expect(dialog.locator("#confirm-title")).to_have_text(f"Disconnect {RELAY_METER}?")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(page.locator('#command-list [data-kind="disconnect"]')).to_have_count(0)
    expect(relay).to_have_text("Supply on")

    page.locator("#cmd-disconnect").click()
    dialog.get_by_label("Reason").fill("browser test: maintenance")
    dialog.get_by_role("button", name="Disconnect").click()
    expect(page.locator('#command-list [data-kind="disconnect"][data-status="succeeded"]')).to_be_visible()
    expect(page.locator('#command-list [data-kind="disconnect"]')).to_contain_text("relay open (supply off)")
    expect(relay).to_have_text("Supply off")
    # The load is cut: the meter reads no power on the next collection.
    expect(page.locator('#live-table td[data-q="power_w"][data-phase="1"]')).to_have_text("0", timeout=20_000)

    page.locator("#cmd-reconnect").click()
    dialog.get_by_role("button", name="Reconnect").click()
    expect(page.locator('#command-list [data-kind="reconnect"][data-status="succeeded"]')).to_be_visible()
    expect(relay).to_have_text("Supply on")


def test_keyboard_only_disconnect_is_cancelled_with_escape(operator_page: Any, dashboard: Dashboard) -> None:
    page = operator_page
    page.goto(f"{dashboard.url}/#/meter/{RELAY_METER}")
    expect(page.locator("h1")).to_be_focused()  # a navigation starts at the page's heading
    expect(page.locator("#command-list li").first).to_be_attached()  # the list has loaded
    commands = page.locator("#command-list li[data-command]")
    sent = commands.count()
    page.locator("#cmd-reconnect").focus()
    page.keyboard.press("Shift+Tab")
    expect(page.locator("#cmd-disconnect")).to_be_focused()
    page.keyboard.press("Enter")
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    page.wait_for_timeout(500)
    expect(commands).to_have_count(sent)
    expect(page.locator("#meter-relay")).to_have_text("Supply on")


def test_an_ended_session_leads_back_to_the_login(operator_page: Any, context: Any) -> None:
    page = operator_page
    expect(page.locator("#fleet-table tbody tr[data-meter]").first).to_be_visible()
    context.clear_cookies()  # as if the session expired on the server
    expect(page).to_have_url(re.compile(r"#/login$"), timeout=15_000)
    expect(page.locator("#login-errors")).to_contain_text("Your session has ended")


def test_read_now_shows_the_command_progress(operator_page: Any) -> None:
    page = operator_page
    meter_id = IEC_METERS[0]
    page.goto(page.url.split("#")[0] + f"#/meter/{meter_id}")
    expect(page.locator("h1")).to_have_text(meter_id)
    page.locator("#cmd-read").click()
    read = page.locator('#command-list [data-kind="read"]').first
    # The optical port takes seconds (300 Bd sign-on): the progress shows before the outcome.
    expect(read).to_have_attribute("data-status", re.compile(r"requested|running|succeeded"))
    expect(read).to_have_attribute("data-status", "succeeded", timeout=30_000)
    expect(read).to_contain_text(re.compile(r"\d+ values read"))


def test_disconnect_with_a_second_approval(
    browser: Any, server: DashboardServer, dashboard: Dashboard, operator_page: Any
) -> None:
    server.change_web_settings(disconnect_approval=True)
    admin = browser.new_context(**DESKTOP)
    admin.set_default_timeout(15_000)
    try:
        page = operator_page
        page.goto(f"{dashboard.url}/#/meter/{RELAY_METER}")
        expect(page.locator("#meter-relay")).to_have_text("Supply on")
        page.locator("#cmd-disconnect").click()
        page.locator("#confirm-dialog").get_by_role("button", name="Disconnect").click()
        held = page.locator('#command-list [data-kind="disconnect"][data-status="awaiting_approval"]')
        expect(held).to_be_visible()
        expect(held.get_by_role("button", name="Approve")).to_have_count(0)  # not by the requester
        expect(page.locator("#meter-relay")).to_have_text("Supply on")

        second = admin.new_page()
        log_in(second, dashboard, "admin")
        second.goto(f"{dashboard.url}/#/meter/{RELAY_METER}")
        pending = second.locator('#command-list [data-kind="disconnect"][data-status="awaiting_approval"]')
        pending.get_by_role("button", name="Approve").click()
        second.locator("#confirm-dialog").get_by_role("button", name="Approve").click()
        expect(
            second.locator('#command-list [data-kind="disconnect"][data-status="succeeded"]')
        ).to_be_visible()
        expect(second.locator("#meter-relay")).to_have_text("Supply off")
        expect(page.locator("#meter-relay")).to_have_text("Supply off", timeout=20_000)

        second.locator("#cmd-reconnect").click()
        second.locator("#confirm-dialog").get_by_role("button", name="Reconnect").click()
        expect(second.locator("#meter-relay")).to_have_text("Supply on")
    finally:
        admin.close()
        server.change_web_settings(disconnect_approval=False)


def test_relay_commands_only_on_meters_with_a_relay(operator_page: Any) -> None:
    page = operator_page
    page.goto(page.url.split("#")[0] + f"#/meter/{IEC_METERS[0]}")
    expect(page.locator("h1")).to_have_text(IEC_METERS[0])
    expect(page.locator("#cmd-read")).to_be_enabled()
    expect(page.locator("#cmd-disconnect")).to_have_count(0)
    expect(page.locator("#cmd-reconnect")).to_have_count(0)
    expect(page.locator("#no-relay")).to_contain_text("no supply relay")
    page.goto(page.url.split("#")[0] + f"#/meter/{RELAY_METER}")
    expect(page.locator("h1")).to_have_text(RELAY_METER)
    expect(page.locator("#cmd-disconnect")).to_be_enabled()
    expect(page.locator("#cmd-reconnect")).to_be_enabled()
    expect(page.locator("#no-relay")).to_have_count(0)


def test_prepaid_top_up_changes_the_balance(operator_page: Any) -> None:
    page = operator_page
    page.get_by_role("link", name="Prepaid").click()
    row = page.locator(f'#accounts-table tr[data-account="{PREPAID_ACCOUNT}"]')
    expect(row).to_contain_text(PREPAID_METER)
    row.get_by_role("link", name=PREPAID_ACCOUNT).click()
    expect(page.locator("#account-meter")).to_have_text(PREPAID_METER)
    expect(page.locator("#total-topped-up")).to_have_text("\u20b9100.00")
    before = balance(page, "#balance")

    # The form offers the tariff table's amounts (from the account's tariff).
    expect(page.locator("#topup-hint")).to_contain_text("Accepted amounts: \u20b95.00 \u2192 500")
    expect(page.locator("#topup-choices button")).to_have_text(
        ["\u20b95.00", "\u20b910.00", "\u20b930.00", "\u20b9100.00"]
    )
    # An amount the tariff table does not list is refused by the API (422), and its problem is
    # shown with the accepted amounts; nothing is credited.
    page.get_by_label("Amount (INR)").fill("7")
    page.get_by_role("button", name="Top up").click()
    refused = page.locator("#topup-result [role=alert]")
    expect(refused).to_contain_text("The top-up was not accepted")
    expect(refused).to_contain_text("7.00 INR is not in the tariff table")
    expect(refused).to_contain_text("accepted amounts: 5.00, 10.00, 30.00, 100.00")
    expect(refused).to_contain_text("HTTP 422")
    expect(page.locator("#total-topped-up")).to_have_text("\u20b9100.00")

    page.locator("#topup-choices").get_by_role("button", name=re.compile(r"^\u20b910\.00 for 650")).click()
    expect(page.get_by_label("Amount (INR)")).to_have_value("10.00")
    page.get_by_role("button", name="Top up").click()
    expect(page.locator("#topup-result [role=status]")).to_contain_text("Top-up accepted")
    expect(page.locator("#total-topped-up")).to_have_text("\u20b9110.00")
    after = balance(page, "#balance")
    # 10 rupees buy 650 units; the household uses a few units per reading meanwhile.
    assert before + 600 < after <= before + 650, (before, after)
    expect(page.locator("#topups-table tbody tr")).to_have_count(2)


def test_alarm_is_acknowledged(operator_page: Any) -> None:
    page = operator_page
    page.get_by_role("link", name=re.compile(r"^Alarms")).click()
    rows = page.locator(f'#alarms-table tbody tr:has(a:text-is("{BROKEN_METER}"))')
    expect(rows.first).to_be_visible()
    count = rows.count()
    target = rows.first
    alarm_id = target.get_attribute("data-alarm")
    target.get_by_role("button", name=re.compile("^Acknowledge")).click()
    page.locator("#confirm-dialog").get_by_label("Note").fill("password to be checked on site")
    page.locator("#confirm-dialog").get_by_role("button", name="Acknowledge").click()
    acknowledged = page.locator(f'#alarms-table tr[data-alarm="{alarm_id}"]')
    expect(acknowledged).to_contain_text("by operator")
    expect(acknowledged.get_by_role("button")).to_have_count(0)
    assert rows.count() == count


def test_viewer_sees_but_cannot_act(page: Any, dashboard: Dashboard) -> None:
    log_in(page, dashboard, "viewer")
    # An unknown meter: the API's 404 problem, shown where the page would be.
    page.goto(f"{dashboard.url}/#/meter/no-such-meter")
    problem = page.locator("main [role=alert]")
    expect(problem).to_contain_text("This meter could not be loaded")
    expect(problem).to_contain_text("no-such-meter")
    expect(problem).to_contain_text("HTTP 404 \u00b7 not-found")
    page.goto(f"{dashboard.url}/#/meter/{RELAY_METER}")
    expect(page.locator("#cmd-disconnect")).to_be_disabled()
    expect(page.locator("#commands")).to_contain_text("may look but not send commands")
    page.goto(f"{dashboard.url}/#/prepaid/{PREPAID_ACCOUNT}")
    expect(page.locator("#topup")).to_contain_text("may not top up")
    # The API agrees: even with the session's CSRF token the role is refused (RFC 9457 problem).
    token = page.request.get(f"{dashboard.url}/api/v1/auth/me").json()["csrf_token"]
    answer = page.request.post(
        f"{dashboard.url}/api/v1/meters/{RELAY_METER}/commands",
        data={"kind": "read"},
        headers={"X-CSRF-Token": token},
    )
    assert answer.status == 403
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["type"].endswith("/forbidden")


def test_consumer_on_a_phone_tops_up_and_logs_out(browser: Any, dashboard: Dashboard) -> None:
    context = browser.new_context(**PHONE)
    context.set_default_timeout(15_000)
    errors: list[str] = []
    try:
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        log_in(page, dashboard, "household")
        expect(page).to_have_url(re.compile(r"#/me$"))
        expect(page.locator("#nav-links a")).to_have_count(1)
        expect(page.locator("#nav-links a")).to_have_text("My meter")
        expect(page.locator("h1")).to_have_text("My meter")
        expect(page.locator("#me-supply")).to_have_text("Supply on")
        expect(page.locator("#me-now .me-now-value")).to_contain_text("W")
        expect(page.locator("#usage-chart svg rect.bar").first).to_be_attached()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the page is {width} px wide on a 390 px screen"
        box = page.locator("#usage-chart svg").bounding_box()
        assert box is not None
        assert box["width"] <= 390

        before = balance(page, "#me-balance-value")
        total = page.locator("#me-total").inner_text()
        page.get_by_label("Amount (INR)").fill("5")
        page.get_by_role("button", name="Top up").click()
        expect(page.locator("#me-topup-result [role=status]")).to_contain_text("Top-up accepted")
        expect(page.locator("#me-total")).not_to_have_text(total)
        assert balance(page, "#me-balance-value") > before + 450

        # Staff pages are not theirs: the app sends them home and the API refuses.
        page.goto(f"{dashboard.url}/#/fleet")
        expect(page).to_have_url(re.compile(r"#/me$"))
        assert page.request.get(f"{dashboard.url}/api/v1/fleet").status == 403
        assert page.request.get(f"{dashboard.url}/api/v1/meters/{RELAY_METER}").status == 403

        page.get_by_role("button", name="Log out").click()
        expect(page).to_have_url(re.compile(r"#/login$"))
        expect(page.get_by_label("Username")).to_be_visible()
        assert page.request.get(f"{dashboard.url}/api/v1/auth/me").status == 401
        page.goto(f"{dashboard.url}/#/me")
        expect(page).to_have_url(re.compile(r"#/login$"))
    finally:
        context.close()
    assert errors == []
