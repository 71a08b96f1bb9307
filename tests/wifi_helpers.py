"""Shared bits of the Wi-Fi, portal, auth and limits tests: worlds and waiting."""

import time

from conftest import write_world

HOME = {"ssid": "Home", "password": "secret123", "rssi": -50, "channel": 6,
        "security": "wpa2"}
CAFE = {"ssid": "Café ☕ «Ü»", "password": "pässwörd €!&=+%", "rssi": -70, "channel": 1,
        "security": "wpa2"}
HOME_WEAK = dict(HOME, rssi=-82, channel=11)
GUEST = {"ssid": "Guest", "password": "", "rssi": -60, "channel": 3, "security": "open"}
OFFICE = {"ssid": "Office", "password": "office-pass", "rssi": -40, "channel": 11,
          "security": "wpa2"}
HIDDEN = {"ssid": "Stealth", "password": "hidden-pass", "rssi": -45, "channel": 9,
          "security": "wpa2", "hidden": True}


def world(tmp_path, *nets, scan_ms=200, connect_ms=300, name="world.json"):
    return write_world(tmp_path / name, nets, scan_ms=scan_ms, connect_ms=connect_ms)


def wait_for(fn, timeout=20.0, every=0.2, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(every)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


def wait_mode(b, mode, timeout=20.0):
    return wait_for(lambda: b.status()["mode"] == mode, timeout, what="mode " + mode)


def wait_attempt(b, timeout=20.0, auth=None):
    def done():
        a = b.get("/api/wifi", auth=auth).json()["attempt"]
        return a if a["state"] in ("connected", "failed") else None

    return wait_for(done, timeout, what="join attempt")


def wait_scan(b, timeout=20.0, auth=None):
    def done():
        d = b.get("/api/wifi/networks", auth=auth).json()
        return d if d["age_s"] is not None and not d["scanning"] else None

    return wait_for(done, timeout, what="scan")
