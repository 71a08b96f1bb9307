"""The /firmware page in headless Chromium at phone size: version list, upgrade with live
progress, the downgrade confirmation, and rollback. Screenshots go to docs/screenshots/."""

from __future__ import annotations

import time

import pytest

from conftest import PHONE, shot, write_world
from ota_helpers import Release, wait_for, wait_version

LAB = {"ssid": "lab", "password": "otatest-pass", "rssi": -50, "channel": 6,
       "security": "WPA2", "hidden": False}


@pytest.fixture
def page(launch_chromium):
    pg = launch_chromium().new_context(viewport=PHONE).new_page()
    pg.set_default_timeout(30000)
    return pg


def test_firmware_page_upgrade_and_rollback(board, tmp_path, page):
    rel = Release(tmp_path / "rel")
    # a filler and a slow server make the download long enough to watch the progress bar
    rel.serve(["1.0.0", "1.1.0"], filler=1_000_000, rate=700_000)
    world = write_world(tmp_path / "world.json", [LAB])
    cfg = rel.config()
    cfg["wifi"] = {"networks": [{"ssid": "lab", "password": LAB["password"]}]}
    b = board(bundle=rel.www / "perch-1.0.0.bundle", config=cfg, world=world,
              env={"PERCH_OTA_CONFIRM_S": "10"})
    wait_version(b, "1.0.0")
    wait_for(lambda: b.status()["wifi"]["ip"], 20, "station up", b)

    page.goto(b.url + "/firmware")
    rows = page.locator("#versions tr")
    assert rows.count() == 2
    assert "1.1.0" in rows.nth(0).inner_text() and "Install" in rows.nth(0).inner_text()
    assert "running" in rows.nth(1).inner_text()
    shot(page, "firmware-versions.png")

    page.locator("#v-1\\.1\\.0 button").click()
    seen = []
    progress_shown = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            st, prog = page.evaluate(
                "[document.getElementById('st').textContent, document.getElementById('prog')"
                ".value, document.getElementById('cur').dataset.v]")[:2]
        except Exception:  # the page reloads when the board is back
            st, prog = None, None
        if st is not None:
            seen.append((st, prog))
            if st == "downloading" and 0 < prog < 100 and not progress_shown:
                shot(page, "firmware-progress.png")
                progress_shown = True
        if page.locator("#cur").get_attribute("data-v") == "1.1.0":
            break
        time.sleep(0.1)
    assert page.locator("#cur").get_attribute("data-v") == "1.1.0", seen[-5:]
    progress = [p for s, p in seen if s == "downloading"]
    assert any(0 < p < 100 for p in progress), seen
    assert progress == sorted(progress)  # live, and only forward
    assert any(s.startswith("rebooting") for s, _ in seen)
    wait_version(b, "1.1.0")
    wait_for(lambda: b.get("/api/ota").json()["available"], 20, "version list", b)
    page.reload()
    assert "1.0.0" in page.locator("#prev").inner_text()
    shot(page, "firmware-upgraded.png")

    # downgrading asks first; dismissing the dialog leaves everything as it was
    asked = []
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    page.locator("#v-1\\.0\\.0 button").click()
    time.sleep(1)
    assert asked and "Downgrade to 1.0.0" in asked[0]
    assert b.status()["version"] == "1.1.0" and b.get("/api/ota").json()["state"] == "idle"

    # rollback, confirmed in the dialog
    page.once("dialog", lambda d: d.accept())
    page.locator("#rbb").click()
    page.wait_for_function("document.getElementById('cur') && "
                           "document.getElementById('cur').dataset.v == '1.0.0'", timeout=60000)
    assert "manual rollback from 1.1.0" in page.locator("#reason").inner_text()
    wait_for(lambda: b.get("/api/ota").json()["available"], 20, "version list", b)
    page.reload()
    shot(page, "firmware-rolled-back.png")
    assert b.status()["version"] == "1.0.0"
