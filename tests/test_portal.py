"""Captive portal on a virtual board: detection redirects, wizard and Wi-Fi pages, settings,
the Wi-Fi API, factory reset, and secrets kept out of every answer."""

import json
import re
import socket

import pytest
import requests

from wifi_helpers import CAFE, GUEST, HOME, HOME_WEAK, wait_attempt, wait_for, wait_mode, world

# (probe host, path) pairs of SPEC section 3.
PROBES = [
    ("connectivitycheck.gstatic.com", "/generate_204"),
    ("clients3.google.com", "/generate_204"),
    ("captive.apple.com", "/hotspot-detect.html"),
    ("www.apple.com", "/library/test/success.html"),
    ("www.msftconnecttest.com", "/connecttest.txt"),
    ("www.msftncsi.com", "/ncsi.txt"),
    ("www.msftconnecttest.com", "/redirect"),
    ("detectportal.firefox.com", "/canonical.html"),
    ("detectportal.firefox.com", "/success.txt"),
    ("nmcheck.gnome.org", "/check_network_status.txt"),
    ("network-test.debian.org", "/nm"),
    ("example.com", "/"),
    ("example.com", "/api/status"),
]


def raw_request(port, head, timeout=5):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head)
        chunks = []
        while True:
            c = s.recv(4096)
            if not c:
                break
            chunks.append(c)
    return b"".join(chunks)


@pytest.fixture
def portal(board, tmp_path):
    b = board(world=world(tmp_path, HOME, HOME_WEAK, CAFE, GUEST))
    wait_mode(b, "ap")
    return b


def test_every_probe_gets_a_302_to_the_portal(portal):
    b = portal
    want = "http://127.0.0.1:%d/" % b.http_port
    for host, path in PROBES:
        for method in ("GET", "HEAD", "POST"):
            r = requests.request(method, b.url + path, headers={"Host": host},
                                 allow_redirects=False, timeout=5)
            assert r.status_code == 302, (host, path, method, r.status_code)
            assert r.headers["Location"] == want
            assert r.text.strip() != "Success" and "success" not in r.text.lower()
    # HTTP/1.0 without a Host header is not the device either.
    raw = raw_request(b.http_port, b"GET /generate_204 HTTP/1.0\r\n\r\n")
    assert raw.startswith(b"HTTP/1.0 302") and b"Location: " + want.encode() in raw


def test_own_addresses_are_served_normally(portal):
    b = portal
    dev = b.status()["device_id"]
    for host in ("127.0.0.1:%d" % b.http_port, "localhost:%d" % b.http_port, "192.168.4.1",
                 "%s.local" % dev, "%s.local:%d" % (dev.upper(), b.http_port)):
        r = requests.get(b.url + "/", headers={"Host": host}, allow_redirects=False, timeout=5)
        assert r.status_code == 200, host
        assert "Choose a network" in r.text
        r = requests.get(b.url + "/generate_204", headers={"Host": host}, timeout=5)
        assert r.status_code == 404


def test_joined_board_does_not_redirect(board, tmp_path):
    b = board(world=world(tmp_path, HOME), env={"PERCH_AP_LINGER_S": "0"},
              config={"wifi": {"networks": [{"ssid": "Home", "password": "secret123"}]}})
    wait_mode(b, "sta")
    r = requests.get(b.url + "/generate_204", headers={"Host": "connectivitycheck.gstatic.com"},
                     allow_redirects=False, timeout=5)
    assert r.status_code == 404
    r = b.get("/")
    assert "Choose a network" not in r.text and "Network" in r.text


def test_unknown_pages_are_404(portal):
    b = portal
    for method, path in (("GET", "/wifi/nonsense"), ("POST", "/settings/__init__"),
                         ("GET", "/settings/admin"), ("POST", "/wifi/result"),
                         ("GET", "/wifix"), ("GET", "/api/settings"), ("DELETE", "/wifi"),
                         ("GET", "/api/wifi/scan"), ("POST", "/api/wifi/networks"),
                         ("GET", "/api/factory-reset"), ("POST", "/api/factory-reset/scan"),
                         ("PUT", "/api/wifi")):
        r = requests.request(method, b.url + path, timeout=5)
        assert r.status_code in (404, 405), (method, path)
    assert b.get("/api/status").status_code == 200
    assert b.status()["mode"] == "ap"  # nothing above reset the board


def test_wizard_lists_networks_deduplicated_strongest_first(portal):
    b = portal
    wait_for(lambda: b.get("/api/wifi/networks").json()["age_s"] is not None, what="scan")
    page = b.get("/").text
    names = re.findall(r'name="ssid" value="([^"]*)"', page)
    # "Home" twice in the air (-50 and -82): listed once, at its strongest.
    assert names == ["Home", "Guest", "Café ☕ «Ü»", ""]
    assert page.count('aria-label="wpa2"') == 2  # locks on the two WPA2 networks, not Guest
    assert 'title="-50 dBm"' in page and 'aria-label="signal 4 of 4"' in page
    assert 'name="manual"' in page and 'type="password"' in page and 'id="show"' in page
    assert '<form method="post" action="/wifi">' in page
    # No external assets: nothing loads from another host; one stylesheet, ours.
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert re.findall(r'<link[^>]+>', page) == ['<link rel="stylesheet" href="/style.css">']
    css = b.get("/style.css")
    assert css.headers["Content-Encoding"] == "gzip" and css.headers["Content-Type"] == "text/css"
    api = b.get("/api/wifi/networks").json()["networks"]
    assert [n["ssid"] for n in api] == ["Home", "Guest", "Café ☕ «Ü»"]
    assert set(api[0]) == {"ssid", "rssi", "channel", "security", "hidden"}
    assert api[0]["rssi"] == -50


def test_form_flow_wrong_then_right_password(portal):
    b = portal
    s = requests.Session()
    r = s.post(b.url + "/wifi", data={"ssid": CAFE["ssid"], "password": "wrong-password"},
               allow_redirects=False, timeout=5)
    assert r.status_code == 303 and r.headers["Location"] == "/wifi/result"
    wait_attempt(b)
    r = s.get(b.url + "/wifi/result", timeout=5)
    assert "Could not join Café ☕ «Ü»: wrong password." in r.text
    # The form comes back with the network preselected.
    assert 'value="Café ☕ «Ü»" checked' in r.text
    r = s.post(b.url + "/wifi", data={"ssid": CAFE["ssid"], "password": CAFE["password"]},
               timeout=5)
    assert r.status_code == 200  # followed to /wifi/result
    wait_attempt(b)
    r = s.get(b.url + "/wifi/result", timeout=5)
    dev = b.status()["device_id"]
    assert "Connected" in r.text and "http://127.0.0.1:%d/" % b.http_port in r.text
    assert "http://%s.local:%d/" % (dev, b.http_port) in r.text
    assert "Set admin password" in r.text
    assert CAFE["password"] not in r.text
    assert b.status()["mode"] == "ap+sta"


def test_form_hidden_network_and_errors(portal):
    b = portal
    r = b.post("/wifi", data={"ssid": "", "manual": "", "password": "x"})
    assert r.status_code == 400 and "pick a network" in r.text
    r = b.post("/wifi", data={"ssid": "Home", "password": "short"})
    assert r.status_code == 400 and "8 to 64" in r.text
    r = b.post("/wifi", data=b"ssid=%ff%fe&password=x",
               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400 and "UTF-8" in r.text
    r = b.post("/wifi", data={"ssid": "", "manual": "Not Here", "password": "whatever1"})
    assert r.status_code == 200
    assert wait_attempt(b)["reason"] == "SSID not found"
    assert b.get("/api/status").status_code == 200


def test_saved_network_form_edit_and_forget(board, tmp_path):
    nets = [{"ssid": "Home", "password": "secret123"}, {"ssid": "Guest", "password": ""}]
    b = board(world=world(tmp_path, HOME, GUEST), config={"wifi": {"networks": nets}})
    wait_for(lambda: b.status()["wifi"]["ssid"], what="link")
    page = b.get("/wifi").text
    assert "Saved networks" in page and page.count('action="/wifi/saved"') == 2
    assert "secret123" not in page
    r = b.post("/wifi/saved", data={"ssid": "Guest", "priority": "9"})
    assert r.status_code == 200
    assert b.get("/api/wifi").json()["networks"][0] == {"ssid": "Guest", "hidden": False,
                                                       "priority": 9}
    r = b.post("/wifi/forget", data={"ssid": "Home"})
    assert r.status_code == 200
    assert [n["ssid"] for n in b.get("/api/wifi").json()["networks"]] == ["Guest"]


def test_settings_page_keeps_secrets_write_only(portal):
    b = portal
    r = b.post("/settings", data={
        "name": "Greenhouse", "mqtt_url": "mqtt://broker.local:1883", "mqtt_user": "vhost:bob",
        "mqtt_password": "mq-s3cret", "interval": "30", "ota_server": "",
        "ap_password": "ap-s3cret-pw"})
    assert r.status_code == 200 and "Saved." in r.text
    cfg = json.loads((b.root / "config.json").read_text())
    assert cfg["mqtt"]["url"] == "mqtt://vhost:bob:mq-s3cret@broker.local:1883"
    assert cfg["telemetry"]["interval_s"] == 30 and cfg["name"] == "Greenhouse"
    page = b.get("/settings").text
    assert "mq-s3cret" not in page and "ap-s3cret-pw" not in page
    assert 'value="mqtt://broker.local:1883"' in page and 'value="vhost:bob"' in page
    assert "set – leave blank to keep" in page
    # A blank password field keeps the stored one.
    r = b.post("/settings", data={"name": "Greenhouse", "mqtt_url": "mqtt://broker.local:1884",
                                  "mqtt_user": "vhost:bob", "mqtt_password": "",
                                  "interval": "30"})
    assert r.status_code == 200
    cfg = json.loads((b.root / "config.json").read_text())
    assert cfg["mqtt"]["url"] == "mqtt://vhost:bob:mq-s3cret@broker.local:1884"
    r = b.post("/settings", data={"name": "G", "mqtt_url": "", "interval": "0"})
    assert r.status_code == 400 and "telemetry.interval_s" in r.text
    r = b.post("/settings", data={"name": "G", "mqtt_url": "ftp://x", "interval": "10"})
    assert r.status_code == 400 and "mqtt.url" in r.text
    pub = b.get("/api/config").text
    for secret in ("mq-s3cret", "ap-s3cret-pw"):
        assert secret not in pub and secret not in b.get("/api/logs").text
        assert secret not in b.log()


def test_api_hides_wifi_passwords(portal):
    b = portal
    b.post("/api/wifi", json={"ssid": CAFE["ssid"], "password": CAFE["password"]})
    assert wait_attempt(b)["state"] == "connected"
    for path in ("/api/wifi", "/api/config", "/api/status", "/api/logs", "/wifi", "/settings",
                 "/"):
        assert CAFE["password"] not in b.get(path).text, path
    assert CAFE["password"] not in b.log()


def test_factory_reset_wipes_config_and_networks(board, tmp_path):
    nets = [{"ssid": "Home", "password": "secret123"}]
    b = board(world=world(tmp_path, HOME), config={"wifi": {"networks": nets}, "name": "Kept?"})
    wait_for(lambda: b.status()["wifi"]["ssid"], what="link")
    r = b.post("/api/factory-reset")
    assert r.status_code == 202
    wait_for(lambda: not (b.root / "config.json").exists(), 5, what="config wiped")

    def back_in_ap():
        try:
            return b.status()["mode"] == "ap"
        except requests.RequestException:
            return False

    wait_for(back_in_ap, 30, what="reboot into the portal")
    s = b.status()
    assert s["name"] == s["device_id"] and s["wifi"]["ssid"] is None
    assert b.get("/api/wifi").json()["networks"] == []
    r = b.post("/settings/reset", data={})
    assert r.status_code == 400 and "confirm" in r.text
