"""SNTP clock sync under the Unix port against a small NTP server on loopback."""

import socket
import struct
import threading

import pytest

# 2030-01-02 03:04:05 UTC as NTP seconds (since 1900)
NTP_SECS = 1893553445 + 2208988800


@pytest.fixture
def ntp_server():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    seen = []

    def serve():
        while True:
            try:
                data, addr = s.recvfrom(512)
            except OSError:
                return
            seen.append(data)
            reply = bytearray(48)
            reply[0] = 0x1C  # version 3, mode 4 (server)
            struct.pack_into("!I", reply, 40, NTP_SECS)
            s.sendto(bytes(reply), addr)

    threading.Thread(target=serve, daemon=True).start()
    yield s.getsockname()[1], seen
    s.close()


def run(mpy, port, timeout_ms=2000):
    code = (
        "import asyncio, json\nfrom perch import sntp\nout = []\n"
        "async def main():\n"
        "    ok = await sntp.sync('127.0.0.1', %d, %d, out.append)\n"
        "    print(json.dumps([ok, [list(t[:6]) for t in out]]))\n"
        "asyncio.run(main())\n" % (timeout_ms, port))
    r = mpy(code)
    assert r.returncode == 0, r.err
    return r.json()


def test_sync_sets_the_clock(mpy, ntp_server):
    port, seen = ntp_server
    ok, times = run(mpy, port)
    assert ok is True
    assert times == [[2030, 1, 2, 3, 4, 5]]
    assert seen and len(seen[0]) == 48 and seen[0][0] == 0x1B  # an SNTP v3 client request


def test_no_server_gives_up_without_setting(mpy):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))  # bound, never answers
        ok, times = run(mpy, s.getsockname()[1], timeout_ms=1200)
    assert ok is False and times == []
