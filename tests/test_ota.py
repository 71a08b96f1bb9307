"""OTA on virtual boards against a served update folder: upgrade, downgrade, upload, rollback
(manual and automatic), refusal of bad bundles, the anti-rollback floor."""

from __future__ import annotations

import json

import pytest

from conftest import write_world
from ota_helpers import CRASH_APP, HANG_APP, Release, wait_for, wait_version

CONFIRM_S = 10
LAB = {"ssid": "lab", "password": "otatest-pass", "rssi": -50, "channel": 6,
       "security": "WPA2", "hidden": False}


@pytest.fixture(scope="module")
def rel(tmp_path_factory):
    r = Release(tmp_path_factory.mktemp("ota"))
    r.serve(["1.0.0", "1.1.0"])
    r.crash = r.make("1.2.0", CRASH_APP, "crash-1.2.0.bundle")
    r.hang = r.make("1.2.0", HANG_APP, "hang-1.2.0.bundle")
    r.other = Release(r.tmp / "other")  # a key the board does not trust
    yield r
    r.server.shutdown()


@pytest.fixture
def ota_board(board, rel, tmp_path):
    def make(**kw):
        # downloads need the simulated station up: a known network in the world and config
        world = write_world(tmp_path / "ota-world.json", [LAB])
        cfg = rel.config()
        cfg["wifi"] = {"networks": [{"ssid": LAB["ssid"], "password": LAB["password"]}]}
        b = board(bundle=rel.dist / "perch-1.0.0.bundle", config=cfg, world=world,
                  env={"PERCH_OTA_CONFIRM_S": str(CONFIRM_S)}, **kw)
        wait_version(b, "1.0.0")
        wait_for(lambda: b.status()["wifi"]["ip"], 20, "station up", b)
        return b
    return make


def test_upgrade_downgrade_upload_rollback(ota_board, rel):
    b = ota_board()
    doc = b.get("/api/ota").json()
    assert doc["current"] == "1.0.0" and doc["previous"] is None
    assert [r["version"] for r in doc["available"]] == ["1.1.0", "1.0.0"], doc["index_error"]
    assert doc["available"][1]["current"] and doc["available"][0]["notes"] == "release 1.1.0"

    # upgrade from the server
    r = b.post("/api/ota/install", json={"version": "1.1.0"})
    assert r.status_code == 202, r.text
    s = wait_version(b, "1.1.0")
    assert s["previous_version"] == "1.0.0"
    assert s["ota"]["state"] == "idle" and s["ota"]["last_error"] is None

    # without JavaScript, the page's downgrade form asks for a confirmation first
    r = b.post("/firmware/install", data={"version": "1.0.0"},
               headers={"Origin": b.url}, allow_redirects=False)
    assert r.status_code == 200 and "Downgrade to 1.0.0" in r.text and 'name="confirm"' in r.text
    assert b.get("/api/ota").json()["state"] == "idle"

    # explicit downgrade from the list
    doc = b.get("/api/ota").json()
    assert doc["available"][1] == {**doc["available"][1], "downgrade": True, "allowed": True}
    assert b.post("/api/ota/install", json={"version": "1.0.0"}).status_code == 202
    s = wait_version(b, "1.0.0")
    assert s["previous_version"] == "1.1.0"

    # upload 1.1.0 from a file, streamed as the request body
    data = (rel.www / "perch-1.1.0.bundle").read_bytes()
    r = b.post("/api/ota/upload", data=data,
               headers={"Content-Type": "application/octet-stream"}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["version"] == "1.1.0"
    s = wait_version(b, "1.1.0")
    assert s["previous_version"] == "1.0.0"

    # manual rollback, no network involved
    r = b.post("/api/ota/rollback")
    assert r.status_code == 202 and r.json()["to"] == "1.0.0"
    s = wait_version(b, "1.0.0")
    assert s["previous_version"] == "1.1.0"
    assert "manual rollback from 1.1.0" in s["ota"]["rollback_reason"]


def test_install_by_url_follows_redirects(ota_board, rel):
    b = ota_board()
    url = rel.url + "/redirect/3/perch-1.1.0.bundle"
    assert b.post("/api/ota/install", json={"url": url}).status_code == 202
    s = wait_version(b, "1.1.0")
    assert s["previous_version"] == "1.0.0"


def _refused(b, data, msg):
    r = b.post("/api/ota/upload", data=data,
               headers={"Content-Type": "application/octet-stream"}, timeout=60)
    assert r.status_code == 400, r.text
    assert msg in r.json()["error"]
    s = b.status()
    assert s["version"] == "1.0.0" and s["previous_version"] is None
    assert s["ota"]["state"] == "error" and msg in s["ota"]["last_error"]
    assert json.loads((b.root / "app" / "state.json").read_text())["active"] == "a"


def test_bad_uploads_refused_running_version_untouched(ota_board, rel):
    b = ota_board()
    good = (rel.www / "perch-1.1.0.bundle").read_bytes()
    tampered = bytearray(good)
    tampered[-300] ^= 0x40
    _refused(b, bytes(tampered), ".mpy")  # names the damaged file
    _refused(b, good[: len(good) // 2], "truncated bundle")
    _refused(b, b"GARBAGE" * 3000, "not a Perch bundle")
    _refused(b, rel.other.make("1.1.0").read_bytes(), "bad signature")
    # the floor blocks older versions with a clear error, before anything is downloaded
    r = b.patch("/api/config", json={"ota": {"min_version": "1.0.0"}})
    assert r.status_code == 200, r.text
    old = rel.make("0.9.0")
    _refused(b, old.read_bytes(), "below ota.min_version 1.0.0")
    # an unknown version is a 404 naming it; other routes keep the small body limit
    r = b.post("/api/ota/install", json={"version": "7.7.7"})
    assert r.status_code == 404 and "7.7.7" in r.json()["error"]
    r = b.patch("/api/config", data=b"x" * 100_000)
    assert r.status_code == 413
    # and the board still works: a good upload goes through afterwards
    r = b.post("/api/ota/upload", data=good, timeout=60)
    assert r.status_code == 200, r.text
    wait_version(b, "1.1.0")


def test_min_version_blocks_install_from_server(ota_board, rel):
    b = ota_board()
    assert b.patch("/api/config", json={"ota": {"min_version": "1.10.0"}}).status_code == 200
    r = b.post("/api/ota/install", json={"version": "1.1.0"})
    # semver, not string compare: 1.1.0 < 1.10.0
    assert r.status_code == 400 and "below ota.min_version 1.10.0" in r.json()["error"]
    doc = b.get("/api/ota").json()
    assert all(not a["allowed"] for a in doc["available"])
    assert b.status()["version"] == "1.0.0"


@pytest.mark.parametrize("variant,why", [
    ("crash", "RuntimeError: boom in the new version"),
    ("hang", "watchdog reset"),
])
def test_automatic_rollback(ota_board, rel, variant, why):
    b = ota_board()
    data = getattr(rel, variant).read_bytes()
    r = b.post("/api/ota/upload", data=data, timeout=60)
    assert r.status_code == 200, r.text

    def rolled_back():
        s = b.get("/api/status", timeout=3).json()
        return s if s["ota"]["rollback_reason"] else None

    s = wait_for(rolled_back, 30 + CONFIRM_S, "rollback", b)
    assert s["version"] == "1.0.0"
    assert s["previous_version"] == "1.2.0"
    assert "trial of 1.2.0 failed" in s["ota"]["rollback_reason"]
    assert why in s["ota"]["rollback_reason"]
    assert why in b.get("/firmware").text
    st = json.loads((b.root / "app" / "state.json").read_text())
    assert st["active"] == "a" and st["trial"] is False


def test_trial_that_never_gets_healthy_is_reset_and_rolled_back(board, rel, tmp_path):
    # Wi-Fi is configured but its network is gone: the new version's health check cannot
    # pass, so it resets itself at ota.confirm_s and boot.py returns to the previous slot
    world = write_world(tmp_path / "empty-world.json", [])
    cfg = rel.config()
    cfg["wifi"] = {"networks": [{"ssid": LAB["ssid"], "password": LAB["password"]}]}
    b = board(bundle=rel.dist / "perch-1.0.0.bundle", config=cfg, world=world,
              env={"PERCH_OTA_CONFIRM_S": str(CONFIRM_S)})
    wait_version(b, "1.0.0", confirmed=False)
    data = (rel.www / "perch-1.1.0.bundle").read_bytes()
    r = b.post("/api/ota/upload", data=data, timeout=60)
    assert r.status_code == 200, r.text
    wait_version(b, "1.1.0", confirmed=False)

    def rolled_back():
        s = b.get("/api/status", timeout=3).json()
        return s if s["ota"]["rollback_reason"] else None

    s = wait_for(rolled_back, 30 + CONFIRM_S, "rollback", b)
    assert s["version"] == "1.0.0" and s["previous_version"] == "1.1.0"
    reason = s["ota"]["rollback_reason"]
    assert reason.startswith("trial of 1.1.0 failed: health check did not pass within 10 s")
    assert "wifi" in reason


def test_download_resumes_with_range_after_a_dropped_connection(ota_board, rel):
    b = ota_board()
    size = (rel.www / "perch-1.1.0.bundle").stat().st_size
    url = rel.url + "/drop/%d/perch-1.1.0.bundle" % (size // 2)
    assert b.post("/api/ota/install", json={"url": url}).status_code == 202
    s = wait_version(b, "1.1.0")
    assert s["previous_version"] == "1.0.0"


def test_install_over_https(ota_board, rel):
    import update_server
    from conftest import self_signed_cert

    cert, key = self_signed_cert(rel.tmp / "tls")
    srv, url = update_server.serve_in_thread(rel.www, tls=(str(cert), str(key)))
    try:
        b = ota_board()
        r = b.post("/api/ota/install", json={"url": url + "/perch-1.1.0.bundle"})
        assert r.status_code == 202, r.text
        s = wait_version(b, "1.1.0")
        assert s["previous_version"] == "1.0.0"
    finally:
        srv.shutdown()
