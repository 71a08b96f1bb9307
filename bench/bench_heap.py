"""SPEC §9's heap rows, in the worst case a board meets: being set up.

A fresh board with MQTT already in its seed config serves its access point, the captive DNS
and the portal; a phone loads every page and saves the home network; the station joins, MQTT
connects and publishes while the access point lingers (ap.linger_s 3600), so every feature runs
at once. Then a 1.5 MB signed bundle is uploaded in that state. The smallest heap is found by
stepping down 8 KB at a time from a heap that works.
"""

from __future__ import annotations

import time

import dns.message
import dns.query
import requests

import rabbit
from ota_helpers import Release, wait_for

LAB = {"ssid": "lab", "password": "labpassword", "rssi": -50, "channel": 6, "security": "wpa2"}
PAGES = ("/", "/wifi", "/settings", "/firmware", "/logs", "/api/wifi/networks", "/api/ota")
MB = 1024 * 1024


def _ok(b, path):
    r = b.get(path, timeout=10)
    if r.status_code != 200:
        raise AssertionError("%s: HTTP %d" % (path, r.status_code))


def _dns_ok(b):
    q = dns.message.make_query("connectivitycheck.gstatic.com", "A")
    a = dns.query.udp(q, "127.0.0.1", port=b.dns_port, timeout=3)
    if not a.answer:
        raise AssertionError("captive DNS gave no answer")


def _status(b):
    return b.get("/api/status?gc=1", timeout=10).json()


def setup_walk(b):
    """Run the set-up scenario on a started board; return the live heap (bytes) at the end."""
    b.wait_ready(timeout=20)
    for p in PAGES:
        _ok(b, p)
    _dns_ok(b)
    r = b.post("/api/wifi", json={"ssid": LAB["ssid"], "password": LAB["password"]}, timeout=10)
    if r.status_code != 202:
        raise AssertionError("POST /api/wifi: HTTP %d" % r.status_code)
    wait_for(lambda: _status(b)["mqtt"]["state"] == "connected", 30, "MQTT connected", b)
    wait_for(lambda: _status(b)["mqtt"]["sent"] >= 2, 30, "readings published", b)
    for p in PAGES:
        _ok(b, p)
    _dns_ok(b)  # the access point still lingers
    return _status(b)["mem"]["alloc"]


def _board(bench, heap, rel, url):
    cfg = {"mqtt": {"url": url}, "ap": {"linger_s": 3600},
           "telemetry": {"interval_s": 1, "sensors": ["sim"]}}
    cfg.update(rel.config())
    b = bench.board(heap=heap, config=cfg, networks=[LAB], start=False)
    b.start(wait=False)
    return b


def _try(bench, heap, rel, url, bundle=None):
    b = _board(bench, "%dk" % heap, rel, url)
    try:
        live = setup_walk(b)
        if bundle is not None:
            r = b.post("/api/ota/upload", data=bundle, timeout=120)
            r.raise_for_status()
            wait_for(lambda: _status(b)["version"] == "1.3.0", 60, "reboot into 1.3.0", b)
        return live
    except (requests.RequestException, AssertionError, TimeoutError, RuntimeError, OSError,
            KeyError, ValueError):
        return None
    finally:
        b.stop()


def _smallest(bench, rel, url, bundle=None, start=256, floor=96):
    """Step down from `start` while the scenario passes; the last passing heap in KB."""
    best = None
    heap = start
    while heap >= floor:
        if _try(bench, heap, rel, url, bundle) is None:
            break
        best = heap
        heap -= 16 if heap > 192 else 8
    return best


def rows(bench):
    node = rabbit.Rabbit()
    node.start()
    try:
        node.add_user("heap", "heappw")
        url = node.url("heap", "heappw")
        rel = Release(bench.tmp / "heap-ota")
        mid = rel.make("1.3.0", filler=int(1.5 * MB), name="mid.bundle").read_bytes()
        t0 = time.monotonic()
        live = _try(bench, 512, rel, url)
        whole = _smallest(bench, rel, url)
        ota = _smallest(bench, rel, url, bundle=mid, start=whole or 256)
        dt = time.monotonic() - t0
    finally:
        node.cleanup()

    def kb(v):
        return "%dk" % v if v else "> 256k"

    return [
        ("live heap, every feature at once (AP+DNS+portal+MQTT), 512k", (live or 0) // 1024,
         "KB", "-", "set-up walk: pages, DNS, join, MQTT publishing"),
        ("smallest --heap for the whole set-up walk", kb(whole), "",
         "160k (goal 128k)", "8 KB steps; %.0f s for this and the next row" % dt),
        ("smallest --heap: set-up walk then a 1.5 MB OTA upload", kb(ota), "", "160k",
         "upload while AP, DNS and MQTT run"),
    ]
