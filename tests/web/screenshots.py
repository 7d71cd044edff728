"""Regenerate the dashboard screenshots in docs/screenshots/ (``make screenshots``, or
``python -m tests.web.screenshots [--out DIR] [--samples N]`` from the repository root).

It starts the same fleet, head-end and app as the browser tests (``harness.py``), drives
Debian's headless Chromium through every page and saves a PNG of each: login, fleet, meter,
prepaid, alarms (desktop, 1440 px wide) and the consumer view on a phone (390 x 844, 2x).
The meter page waits for ``--samples`` live samples so its line chart shows a stretch.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    DESKTOP,
    EVERY_S,
    PHONE,
    PREPAID_ACCOUNT,
    PREPAID_METER,
    DashboardServer,
    chromium,
    chromium_missing,
    log_in,
)

ROOT = Path(__file__).resolve().parents[2]


def _settle(page: Any) -> None:
    """Let fonts, charts and the last poll land before the picture; no passing toasts."""
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(400)
    page.evaluate("document.getElementById('toasts')?.replaceChildren()")


def shoot(out: Path, samples: int) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []
    with DashboardServer() as dashboard, chromium() as browser:

        def save(page: Any, name: str, *, full_page: bool = True) -> None:
            _settle(page)
            path = out / f"{name}.png"
            page.screenshot(path=str(path), full_page=full_page, animations="disabled", caret="hide")
            saved.append(path)
            print(f"saved {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")

        desktop = browser.new_context(**DESKTOP)
        desktop.set_default_timeout(30_000)
        page = desktop.new_page()
        page.goto(f"{dashboard.url}/#/login")
        page.get_by_label("Username").fill("operator")
        save(page, "login", full_page=False)

        log_in(page, dashboard, "operator")
        page.wait_for_selector("#fleet-table tbody tr[data-meter]")
        save(page, "fleet")

        page.goto(f"{dashboard.url}/#/meter/{PREPAID_METER}")
        page.wait_for_selector("#live-chart svg circle.point")
        deadline = time.monotonic() + samples * EVERY_S * 2 + 10
        while time.monotonic() < deadline:
            lines = page.locator("#live-chart svg g.series").first.locator("circle.point").count()
            if lines >= samples:
                break
            page.wait_for_timeout(500)
        page.wait_for_selector("#load-chart svg rect.bar")
        save(page, "meter")

        # The meter's register advances a whole minute of load at a time: wait until prepaid has
        # charged some of it, so the page shows consumption.
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            account = page.request.get(dashboard.api(f"prepaid/accounts/{PREPAID_ACCOUNT}")).json()
            if account["energy_wh"] > 0:
                break
            page.wait_for_timeout(1000)
        page.goto(f"{dashboard.url}/#/prepaid/{PREPAID_ACCOUNT}")
        page.wait_for_selector("#balance")
        page.get_by_label("Amount (INR)").fill("30")
        page.get_by_role("button", name="Top up").click()
        page.wait_for_selector("#topup-result [role=status]")
        save(page, "prepaid")

        page.goto(f"{dashboard.url}/#/alarms")
        page.wait_for_selector("#alarms-table tbody tr")
        save(page, "alarms")
        desktop.close()

        phone = browser.new_context(**PHONE)
        phone.set_default_timeout(30_000)
        page = phone.new_page()
        log_in(page, dashboard, "household")
        page.wait_for_selector("#usage-chart svg rect.bar")
        page.wait_for_selector("#me-now .me-now-value")
        save(page, "consumer-phone", full_page=False)
        save(page, "consumer-phone-full")
        phone.close()
    return saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots", help="where to write")
    parser.add_argument("--samples", type=int, default=6, help="live samples to wait for on the meter page")
    args = parser.parse_args(argv)
    reason = chromium_missing()
    if reason is not None:
        print(f"cannot take screenshots: {reason}", file=sys.stderr)
        return 2
    shoot(args.out, max(1, args.samples))
    return 0


if __name__ == "__main__":
    sys.exit(main())
