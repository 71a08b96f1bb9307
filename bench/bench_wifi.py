"""Wi-Fi and portal figures: scan-to-page latency, loop stalls while the radio scans and
while a join is tested, and captive DNS answers per second."""

import os
import socket
import statistics
import subprocess
import time

import dns.message

from conftest import MICROPYTHON, free_port

HEAP = "512k"
SCAN_MS = 1200
NETS = [
    {"ssid": "Home", "password": "secret123", "rssi": -50, "channel": 6},
    {"ssid": "Cafe", "password": "latte-4-all", "rssi": -71, "channel": 1},
    {"ssid": "Guest", "password": "", "rssi": -63, "channel": 11, "security": "open"},
]

# Baseline for DNS: the least a MicroPython UDP server can do, a blocking echo loop.
ECHO = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(socket.getaddrinfo("127.0.0.1", %d)[0][-1])
while True:
    p, a = s.recvfrom(600)
    s.sendto(p, a)
"""


def _until(fn, timeout=30, every=0.005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fn():
            return True
        time.sleep(every)
    raise TimeoutError("bench scenario did not finish")


def _scanning(b):
    return b.get("/api/wifi/networks").json()["scanning"]


def scan_latency(b):
    """POST /api/wifi/scan -> fresh list on /api/wifi/networks, in ms."""
    _until(lambda: not _scanning(b))
    t0 = time.monotonic()
    b.post("/api/wifi/scan")
    _until(lambda: not _scanning(b))
    return (time.monotonic() - t0) * 1000


def stall_during(b, action, done):
    b.get("/api/loop")  # resets the window
    action()
    _until(done)
    return b.get("/api/loop").json()["max_stall_ms"]


def dns_rate(port, n=4000, window=16):
    """Answers per second with `window` queries in flight, from one client."""
    qs = [dns.message.make_query("host%d.example" % i, "A").to_wire() for i in range(64)]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    sent = got = lost = 0
    t0 = time.monotonic()
    while got + lost < n:
        while sent - got - lost < window and sent < n:
            s.sendto(qs[sent % len(qs)], ("127.0.0.1", port))
            sent += 1
        try:
            s.recv(600)
            got += 1
        except socket.timeout:
            lost += sent - got - lost
    dt = time.monotonic() - t0
    s.close()
    return got / dt, lost


def echo_rate(bench):
    port = free_port(socket.SOCK_DGRAM)
    env = dict(os.environ, MICROPYPATH=".frozen")
    proc = subprocess.Popen([MICROPYTHON, "-X", "heapsize=" + HEAP, "-c", ECHO % port],
                            env=env, cwd=bench.tmp)
    try:
        time.sleep(0.3)
        return dns_rate(port)[0]
    finally:
        proc.kill()
        proc.wait()


def rows(bench):
    out = []
    b = bench.board(heap=HEAP, networks=NETS, scan_ms=SCAN_MS, connect_ms=800,
                    env={"PERCH_AP_LINGER_S": "600"})
    _until(lambda: b.status()["mode"] == "ap")
    lat = [scan_latency(b) for _ in range(5)]
    out.append(("scan -> list on /api/wifi/networks (median of 5, heap %s)" % HEAP,
                statistics.median(lat), "ms", "radio sweep + 100 ms",
                "radio sweep %d ms" % SCAN_MS))

    time.sleep(0.2)
    idle = stall_during(b, lambda: time.sleep(SCAN_MS / 1000), lambda: True)
    scan = max(stall_during(b, lambda: b.post("/api/wifi/scan"), lambda: not _scanning(b))
               for _ in range(3))
    out.append(("longest loop stall while scanning (worst of 3)", scan, "ms", "< 50 ms",
                "idle %d ms; a scan on the loop itself: %d ms" % (idle, SCAN_MS)))

    def joined():
        return b.get("/api/wifi").json()["attempt"]["state"] in ("connected", "failed")

    stalls = []
    for pw in ("wrong-password", "secret123"):
        stalls.append(stall_during(
            b, lambda pw=pw: b.post("/api/wifi", json={"ssid": "Home", "password": pw}),
            joined))
    out.append(("longest loop stall while testing a join (wrong, right)", max(stalls), "ms",
                "< 50 ms", "idle %d ms" % idle))
    b.stop()

    b = bench.board(heap=HEAP, networks=NETS, scan_ms=SCAN_MS)
    _until(lambda: b.status()["mode"] == "ap")
    rate, lost = dns_rate(b.dns_port)
    base = echo_rate(bench)
    out.append(("captive DNS answers per second (16 in flight)", rate, "answers/s",
                "", "MicroPython blocking UDP echo %.0f/s, ratio %.2f; %d lost"
                % (base, rate / base, lost)))
    b.stop()
    return out
