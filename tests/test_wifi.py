"""Wi-Fi supervisor: scan digest and join order under the Unix port, then the state machine
on virtual boards against a world that changes while they run."""

import json
import time

import requests

from conftest import REPO, write_world
from wifi_helpers import (
    CAFE,
    GUEST,
    HIDDEN,
    HOME,
    HOME_WEAK,
    OFFICE,
    wait_attempt,
    wait_for,
    wait_mode,
    wait_scan,
    world,
)

SIM = REPO / "tools" / "sim" / "board"

DIGEST = """
import json
from perch import wifi, wificonnect
raw = [
    (b"Home", b"\\x01" * 6, 6, -70, 3, False),
    (b"Home", b"\\x02" * 6, 11, -48, 3, False),
    (b"", b"\\x03" * 6, 9, -30, 3, True),
    (b"Guest", b"\\x04" * 6, 1, -60, 0, False),
    ("Caf\\u00e9".encode(), b"\\x05" * 6, 1, -65, 7, False),
    (b"\\xff\\xfe", b"\\x06" * 6, 1, -20, 3, False),
]
wifi.nets = wifi.digest_scan(raw)
saved = [
    {"ssid": "Guest", "priority": 0, "hidden": False},
    {"ssid": "Home", "priority": 0, "hidden": False},
    {"ssid": "Gone", "priority": 5, "hidden": False},
    {"ssid": "Secret", "priority": 1, "hidden": True},
    {"ssid": "Caf\\u00e9", "priority": 3, "hidden": False},
]
order = [n["ssid"] for n in wificonnect.join_order(saved, wifi.nets)]
print(json.dumps({"nets": wifi.scan_doc()["networks"], "order": order}))
"""


def test_scan_digest_and_join_order(mpy):
    res = mpy(DIGEST, path=[SIM], env={"PERCH_SIM_WORLD": "/nonexistent"})
    assert res.returncode == 0, res.err
    doc = res.json()
    nets = doc["nets"]
    # One entry per SSID (its strongest BSS), strongest first, nameless and undecodable out.
    assert [n["ssid"] for n in nets] == ["Home", "Guest", "Café"]
    assert nets[0] == {"ssid": "Home", "rssi": -48, "channel": 11, "security": "wpa2",
                       "hidden": False}
    assert nets[1]["security"] == "open" and nets[2]["security"] == "wpa2/wpa3"
    # Priority first, then signal; unseen networks skipped unless hidden (tried last).
    assert doc["order"] == ["Café", "Home", "Guest", "Secret"]


def saved_cfg(*nets, **extra):
    doc = {"wifi": {"networks": [
        {"ssid": n["ssid"], "password": n["password"], "hidden": bool(n.get("hidden")),
         "priority": n.get("priority", 0)} for n in nets]}}
    doc.update(extra)
    return doc


def test_no_saved_network_starts_ap(board, tmp_path):
    b = board(world=world(tmp_path, HOME, GUEST))
    s = b.status()
    assert s["mode"] == "ap"
    assert s["wifi"] == {"ssid": None, "rssi": None, "ip": None}
    assert "access point up" in b.log() and "ssid=%s" % s["device_id"] in b.log()


def test_joins_strongest_known_network_first(board, tmp_path):
    # Office is stronger than Home: with equal priority the strongest wins.
    b = board(world=world(tmp_path, HOME, OFFICE, GUEST), config=saved_cfg(HOME, OFFICE))
    wait_for(lambda: b.status()["wifi"]["ssid"], what="station link")
    s = b.status()
    assert s["wifi"] == {"ssid": "Office", "rssi": -40, "ip": "127.0.0.1"}
    assert s["mode"] == "sta"
    assert "access point up" not in b.log()


def test_priority_beats_signal(board, tmp_path):
    b = board(world=world(tmp_path, HOME, OFFICE),
              config=saved_cfg(dict(HOME, priority=10), OFFICE))
    wait_for(lambda: b.status()["wifi"]["ssid"], what="station link")
    assert b.status()["wifi"]["ssid"] == "Home"


def test_falls_through_to_next_network_when_first_fails(board, tmp_path):
    # Office's password changed on the router: Home (weaker) must still be joined.
    b = board(world=world(tmp_path, HOME_WEAK, dict(OFFICE, password="rotated-pass")),
              config=saved_cfg(HOME, OFFICE))
    wait_for(lambda: b.status()["wifi"]["ssid"], what="station link")
    assert b.status()["wifi"]["ssid"] == "Home"
    assert 'join failed ssid=Office reason="wrong password"' in b.log()


def test_ap_when_saved_network_absent_then_joins_when_it_appears(board, tmp_path):
    w = world(tmp_path, GUEST)
    b = board(world=w, config=saved_cfg(HOME), env={"PERCH_AP_LINGER_S": "1"})
    wait_mode(b, "ap")
    write_world(w, [GUEST, HOME], scan_ms=200, connect_ms=300)
    # Retried in the background while the portal stays up, then the AP closes.
    wait_for(lambda: b.status()["wifi"]["ssid"] == "Home", 30, what="background join")
    wait_mode(b, "sta", 10)
    assert "access point down" in b.log()


def test_fallback_to_ap_after_outage_and_back(board, tmp_path):
    w = world(tmp_path, HOME, GUEST)
    b = board(world=w, config=saved_cfg(HOME),
              env={"PERCH_WIFI_FALLBACK_S": "10", "PERCH_AP_LINGER_S": "1"})
    wait_for(lambda: b.status()["wifi"]["ssid"], what="station link")
    lost = time.monotonic()
    write_world(w, [GUEST], scan_ms=200, connect_ms=300)
    wait_for(lambda: b.status()["wifi"]["ssid"] is None, 10, what="link loss")
    # Station down but not yet for fallback_s: no AP yet.
    while time.monotonic() - lost < 5:
        assert b.status()["mode"] == "sta"
        time.sleep(0.5)
    wait_mode(b, "ap", 20)
    assert "station down for 10 s" in b.log()
    # The network comes back: the board rejoins and closes the AP.
    write_world(w, [GUEST, HOME], scan_ms=200, connect_ms=300)
    wait_for(lambda: b.status()["wifi"]["ssid"] == "Home", 40, what="rejoin")
    wait_mode(b, "sta", 10)


def test_router_password_change_then_new_password_from_portal(board, tmp_path):
    w = world(tmp_path, HOME)
    b = board(world=w, config=saved_cfg(HOME), env={"PERCH_WIFI_FALLBACK_S": "10"})
    wait_for(lambda: b.status()["wifi"]["ssid"], what="station link")
    write_world(w, [dict(HOME, password="new-secret-99")], scan_ms=200, connect_ms=300)
    wait_mode(b, "ap", 30)
    r = b.post("/api/wifi", json={"ssid": "Home", "password": "new-secret-99"})
    assert r.status_code == 202
    a = wait_attempt(b)
    assert a["state"] == "connected" and a["ip"] == "127.0.0.1"
    cfg = json.loads((b.root / "config.json").read_text())
    assert cfg["wifi"]["networks"] == [{"ssid": "Home", "password": "new-secret-99",
                                        "hidden": False, "priority": 0}]


def test_credential_test_reports_reasons_and_keeps_ap(board, tmp_path):
    b = board(world=world(tmp_path, HOME, CAFE, GUEST))
    wait_mode(b, "ap")
    cases = [
        ({"ssid": "Home", "password": "not-the-one"}, "wrong password"),
        ({"ssid": "Nowhere", "password": "whatever1"}, "SSID not found"),
    ]
    for doc, reason in cases:
        assert b.post("/api/wifi", json=doc).status_code == 202
        assert b.get("/api/wifi").json()["attempt"]["state"] in ("connecting", "failed")
        a = wait_attempt(b)
        assert a == {"ssid": doc["ssid"], "state": "failed", "reason": reason, "ip": None}
        assert b.status()["mode"] == "ap"
    assert b.get("/api/wifi").json()["networks"] == []
    # UTF-8 and special characters in both SSID and password.
    r = b.post("/api/wifi", json={"ssid": CAFE["ssid"], "password": CAFE["password"],
                                  "priority": 3})
    assert r.status_code == 202
    a = wait_attempt(b)
    assert a["state"] == "connected" and a["ssid"] == CAFE["ssid"]
    # The AP stays up after success (the page must show the result) ...
    assert b.status()["mode"] == "ap+sta"
    assert b.get("/api/wifi").json()["networks"] == [
        {"ssid": CAFE["ssid"], "hidden": False, "priority": 3}]
    # ... and open networks need no password.
    assert b.post("/api/wifi", json={"ssid": "Guest"}).status_code == 202
    assert wait_attempt(b)["state"] == "connected"
    assert {n["ssid"] for n in b.get("/api/wifi").json()["networks"]} == {CAFE["ssid"], "Guest"}


def test_connect_timeout(board, tmp_path):
    b = board(world=world(tmp_path, HOME, connect_ms=8000), env={"PERCH_WIFI_TIMEOUT_S": "2"})
    wait_mode(b, "ap")
    assert b.post("/api/wifi", json={"ssid": "Home", "password": "secret123"}).status_code == 202
    a = wait_attempt(b)
    assert a["state"] == "failed" and a["reason"] == "timeout"


def test_hidden_network_joined_by_name(board, tmp_path):
    b = board(world=world(tmp_path, HOME, HIDDEN))
    d = wait_scan(b)
    assert "Stealth" not in [n["ssid"] for n in d["networks"]]
    r = b.post("/api/wifi", json={"ssid": "Stealth", "password": "hidden-pass", "hidden": True})
    assert r.status_code == 202
    assert wait_attempt(b)["state"] == "connected"
    assert b.get("/api/wifi").json()["networks"][0] == {"ssid": "Stealth", "hidden": True,
                                                      "priority": 0}


def test_saved_networks_edit_and_forget(board, tmp_path):
    b = board(world=world(tmp_path, HOME, OFFICE, CAFE), config=saved_cfg(HOME, OFFICE, CAFE))
    wait_for(lambda: b.status()["wifi"]["ssid"], what="station link")
    # Change a priority without re-entering the password.
    r = b.post("/api/wifi", json={"ssid": "Home", "priority": 7})
    assert r.status_code == 200
    nets = b.get("/api/wifi").json()["networks"]
    assert nets[0] == {"ssid": "Home", "hidden": False, "priority": 7}
    assert "password" not in json.dumps(nets)
    quoted = requests.utils.quote(CAFE["ssid"], safe="")
    assert requests.delete(b.url + "/api/wifi/" + quoted, timeout=10).status_code == 200
    assert [n["ssid"] for n in b.get("/api/wifi").json()["networks"]] == ["Home", "Office"]
    r = requests.delete(b.url + "/api/wifi/" + quoted, timeout=10)
    assert r.status_code == 404 and "ssid" in r.json()["error"]
    saved = json.loads((b.root / "config.json").read_text())["wifi"]["networks"]
    assert [n["ssid"] for n in saved] == ["Home", "Office"]


def test_bad_network_requests_name_the_field(board, tmp_path):
    b = board(world=world(tmp_path, HOME))
    cases = [
        ({"ssid": "", "password": "secret123"}, "ssid"),
        ({"ssid": "x" * 33, "password": "secret123"}, "ssid"),
        ({"ssid": 5, "password": "secret123"}, "ssid"),
        ({"ssid": "Home", "password": "short"}, "password"),
        ({"ssid": "Home", "password": "p" * 65}, "password"),
        ({"ssid": "Home", "password": "secret123", "priority": "high"}, "priority"),
        ({"ssid": "Home", "password": "secret123", "hidden": "yes"}, "hidden"),
    ]
    for doc, field in cases:
        r = b.post("/api/wifi", json=doc)
        assert r.status_code == 400, doc
        assert r.json()["field"] == field and field in r.json()["error"]
    for raw in (b"{nope", b"[1, 2]", b"\xff\xfe"):
        r = b.post("/api/wifi", data=raw, headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and "JSON" in r.json()["error"]
    assert b.get("/api/status").status_code == 200


def test_power_cut_after_setup_boots_into_station(board, tmp_path):
    b = board(world=world(tmp_path, HOME))
    wait_mode(b, "ap")
    b.post("/api/wifi", json={"ssid": "Home", "password": "secret123"})
    assert wait_attempt(b)["state"] == "connected"
    b.power_cut()
    b.start()
    wait_for(lambda: b.status()["wifi"]["ssid"] == "Home", what="rejoin after power cut")
    assert b.status()["mode"] == "sta"


def test_scan_never_blocks_other_requests(board, tmp_path):
    b = board(world=world(tmp_path, HOME, GUEST, scan_ms=3000))
    wait_scan(b, 30)
    assert b.post("/api/wifi/scan").status_code == 202
    wait_for(lambda: b.get("/api/wifi/networks").json()["scanning"], 5, 0.05, "scan start")
    # While the radio sweeps for 3 s, the loop answers at once (a blocked loop would not).
    served = 0
    while b.get("/api/wifi/networks", timeout=1).json()["scanning"]:
        assert b.get("/api/status", timeout=1).status_code == 200
        assert b.get("/wifi", timeout=1).status_code == 200
        served += 1
    assert served >= 3
    d = b.get("/api/wifi/networks").json()
    assert [n["ssid"] for n in d["networks"]] == ["Home", "Guest"]


def test_setup_ap_uses_wpa2_when_ap_password_set(board, tmp_path):
    b = board(world=world(tmp_path, HOME), env={"PERCH_AP_PASSWORD": "portal-pass-1"})
    wait_mode(b, "ap")
    assert "secured=True" in b.log()
    assert "portal-pass-1" not in b.log()
    assert b.get("/api/config").json()["ap"]["password"] == {"set": True}


def test_network_constants_match_the_esp32_port():
    # wificonnect and wifiradio fold network's STAT_*, AP_IF and AUTH_* into const()s (no slots
    # in perch.hw): each must hold the ESP32 port's value, as its stubs declare it.
    import re
    from importlib import metadata

    dist = metadata.distribution("micropython-esp32-esp32-generic-stubs")
    stub = next(f for f in dist.files if f.name == "network.pyi").locate().read_text()
    port = dict(re.findall(r"^(\w+): Final\[int\] = (-?\d+)", stub, re.M))
    seen = 0
    for mod in ("wificonnect", "wifiradio"):
        src = (REPO / "lib" / "perch" / f"{mod}.py").read_text()
        for name, value in re.findall(r"^_((?:STAT|AUTH)_\w+|AP_IF) = const\((\d+)\)", src,
                                      re.M):
            assert port[name] == value, f"{mod}._{name}"
            seen += 1
    assert seen == 9


def test_saved_network_limit_matches_the_schema():
    # wifijoin checks the limit itself rather than load perch.schema for one number
    import re

    schema = (REPO / "lib" / "perch" / "schema.py").read_text()
    join = (REPO / "lib" / "perch" / "wifijoin.py").read_text()
    limit = re.search(r'"wifi\.networks": \(_NETS, 0, (\d+)\)', schema).group(1)
    assert re.search(r"^_MAX_NETS = const\((\d+)\)", join, re.M).group(1) == limit
