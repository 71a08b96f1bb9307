"""HTTP limits on a virtual board: sizes, slowloris, connection cap, malformed requests.
Each is answered with a 4xx, and the board keeps serving."""

import socket
import threading
import time

import pytest

from wifi_helpers import HOME, wait_mode, world


def exchange(port, data, timeout=15, trickle=None):
    """Send data (then trickle chunks, one a second); return what the server answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        for chunk in trickle or ():
            time.sleep(1)
            try:
                s.sendall(chunk)
            except OSError:
                break
        out = b""
        while True:
            try:
                c = s.recv(4096)
            except ConnectionResetError:
                break
            if not c:
                break
            out += c
    return out


def status_of(raw):
    return int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/") else None


@pytest.fixture
def b(board, tmp_path):
    bd = board(world=world(tmp_path, HOME))
    wait_mode(bd, "ap")
    return bd


def test_size_limits(b):
    p = b.http_port
    host = b"Host: 127.0.0.1\r\n"
    r = exchange(p, b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\n" + host + b"\r\n")
    assert status_of(r) == 414 and b"request line" in r
    r = exchange(p, b"GET / HTTP/1.1\r\n" + host + b"X-Big: " + b"b" * 5000 + b"\r\n\r\n")
    assert status_of(r) == 431
    many = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 60) for i in range(80))
    r = exchange(p, b"GET / HTTP/1.1\r\n" + host + many + b"\r\n")
    assert status_of(r) == 431
    # A line with no end at all must not be buffered forever either.
    r = exchange(p, b"GET /" + b"c" * 20000)
    assert status_of(r) == 414
    r = b.post("/api/wifi", data=b"x" * 9000, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "8192 byte limit" in r.text
    r = exchange(p, b"POST /api/wifi HTTP/1.1\r\n" + host + b"Content-Length: 99999999\r\n\r\n")
    assert status_of(r) == 413
    assert b.get("/api/status").status_code == 200


def test_malformed_requests(b):
    p = b.http_port
    cases = [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nNoColonHere\r\n\r\n", 400),
        (b"POST /api/wifi HTTP/1.1\r\nContent-Length: nope\r\n\r\n", 400),
        (b"POST /api/wifi HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400),
        (b"POST /api/wifi HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
         411),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)) * 8, 400),
        (b"\x80\x81" + bytes(range(256)) + b"\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: \xff\xfe\r\n\r\n", 400),
    ]
    for raw, want in cases:
        r = exchange(p, raw)
        assert status_of(r) == want, (raw[:40], r[:80])
    assert b.get("/api/status").status_code == 200
    assert "Traceback" not in b.log()


def test_slowloris_dropped_while_others_are_served(b):
    p = b.http_port
    result = {}

    def loris():
        t0 = time.monotonic()
        result["raw"] = exchange(p, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n",
                                 trickle=[b"X-%d: y\r\n" % i for i in range(30)], timeout=40)
        result["s"] = time.monotonic() - t0

    threads = [threading.Thread(target=loris) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(1)
    for _ in range(5):
        assert b.get("/api/status", timeout=3).status_code == 200
        time.sleep(0.3)
    for t in threads:
        t.join(60)
    assert status_of(result["raw"]) == 408
    assert result["s"] < 29  # cut off long before the client finished trickling
    # A body that stalls is cut off too.
    r = exchange(p, b"POST /api/wifi HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n"
                    b"Content-Type: application/json\r\n\r\n{\"ssid\":", timeout=30)
    assert status_of(r) == 408
    assert b.get("/api/status").status_code == 200


def test_connection_cap(b):
    p = b.http_port
    idle = [socket.create_connection(("127.0.0.1", p), timeout=10) for _ in range(8)]
    time.sleep(0.5)
    extra = exchange(p, b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert status_of(extra) == 429 and b"Retry-After: 1" in extra
    for s in idle:
        s.close()
    time.sleep(0.5)
    assert b.get("/api/status").status_code == 200
    # Idle connections that are kept open are timed out, freeing their slots.
    idle = [socket.create_connection(("127.0.0.1", p), timeout=15) for _ in range(8)]
    answers = [s.recv(200) for s in idle]
    assert all(status_of(a) == 408 for a in answers)
    for s in idle:
        s.close()
    assert b.get("/api/status").status_code == 200
    assert "Traceback" not in b.log()


UPLOAD = """
from perch import httpguard
print(httpguard.body_limit("/api/ota/upload"), httpguard.body_limit("/api/ota/upload?x=1"),
      httpguard.body_limit("/api/wifi"))
"""


def test_only_upload_takes_large_bodies(mpy):
    res = mpy(UPLOAD)
    assert res.returncode == 0, res.err
    assert res.lines()[-1] == "8388608 8388608 8192"
