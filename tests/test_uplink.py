"""The uplink (umqtt.simple wrapped) under the MicroPython Unix port, against the private
RabbitMQ node and against small fake brokers that misbehave on purpose."""

import json
import socket
import threading

import pytest

from mqtt_helpers import Sub

PRELUDE = """
import asyncio, json, time
from perch.uplink import Uplink, UplinkError
from perch.brokerurl import parse_url, public_url
def done(x):
    print(json.dumps(x))
"""


def run(mpy, body, timeout=60):
    code = PRELUDE + "async def main():\n" + "".join(
        "    " + ln + "\n" for ln in body.strip("\n").splitlines()) + "asyncio.run(main())\n"
    r = mpy(code, timeout=timeout)
    assert r.returncode == 0, "micropython failed:\n%s\n%s" % (r.out, r.err)
    return r.json()


def test_url_parsing(mpy):
    got = run(mpy, """
out = []
for u in ["mqtt://h", "mqtts://u:p@h:1884", "mqtt://vhost:user:secret@10.0.0.2",
          "mqtt://vh%3Aus@h", "mqtt://[::1]:1999", "http://h", "mqtt://h:99999",
          "mqtt://h:abc", "mqtt://:p@h", "mqtt://"]:
    try:
        out.append(parse_url(u))
    except UplinkError as e:
        out.append(str(e))
out.append(public_url("mqtt://vhost:user:secret@h:1"))
done(out)
""")
    assert got[0] == {"host": "h", "port": 1883, "user": None, "password": None, "tls": False}
    assert got[1] == {"host": "h", "port": 1884, "user": "u", "password": "p", "tls": True}
    assert got[2]["user"] == "vhost:user" and got[2]["password"] == "secret"
    assert got[3]["user"] == "vh:us" and got[3]["password"] is None
    assert got[4]["host"] == "::1" and got[4]["port"] == 1999
    assert "mqtt:// or mqtts://" in got[5]
    assert "out of range" in got[6]
    assert "not a number" in got[7]
    assert "empty user name" in got[8]
    assert "no host" in got[9]
    assert got[10] == "mqtt://vhost:user:***@h:1"


def test_publish_qos0_qos1_and_pid_wrap(mpy, live_broker):
    b = live_broker
    sub = Sub(b, ["perchtest/wrap"])
    try:
        got = run(mpy, f"""
up = Uplink({b.url(b.user, b.password)!r}, "perch-wrap01", timeout_ms=3000)
asyncio.create_task(up.run())
await asyncio.wait_for_ms(up.wait_connected(), 10000)
up.pid = 65533
pids = []
for i in range(4):
    await up.publish("perchtest/wrap", "q1-%d" % i, False, 1)
    pids.append(up.pid)
await up.publish("perchtest/wrap", "q0", False, 0)
done(pids)
""")
        assert got == [65534, 65535, 1, 2]
        sub.wait(lambda m: len(m) >= 5, what="5 messages")
        assert sub.payloads("perchtest/wrap") == [b"q1-0", b"q1-1", b"q1-2", b"q1-3", b"q0"]
    finally:
        sub.close()


def test_vhost_user(mpy, live_broker):
    b = live_broker
    b.add_user("fleet", "fleetpw", vhost="perchvh") if not getattr(b, "_vh", 0) else None
    b._vh = 1
    got = run(mpy, f"""
up = Uplink("mqtt://perchvh:fleet:fleetpw@127.0.0.1:{b.mqtt_port}", "perch-vhost1",
            timeout_ms=3000)
asyncio.create_task(up.run())
await asyncio.wait_for_ms(up.wait_connected(), 10000)
await up.publish("perchtest/vh", "x", False, 1)
done(up.status())
""")
    assert got["state"] == "connected" and got["connects"] == 1


def test_bad_credentials_readable_error_and_backoff(mpy, live_broker):
    b = live_broker
    got = run(mpy, f"""
up = Uplink({b.url(b.user, "wrong")!r}, "perch-badpw1", timeout_ms=3000,
            backoff_max_ms=4000)
asyncio.create_task(up.run())
waits = []
for _ in range(60):
    await asyncio.sleep_ms(100)
done([up.status(), up.attempts, up.last_backoff_ms])
""")
    st, attempts, backoff = got
    assert st["state"] != "connected"
    assert "bad user name or password (CONNACK 4)" in st["last_error"] or \
        "not authorised (CONNACK 5)" in st["last_error"]
    # 6 s with 1 s, 2 s, 4 s backoff (half of it jitter): a handful of attempts, no tight loop
    assert 1 <= attempts <= 5
    assert backoff >= 500


def test_refused_connection_readable(mpy):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        got = run(mpy, f"""
up = Uplink("mqtt://127.0.0.1:{port}", "perch-refus1", timeout_ms=2000)
asyncio.create_task(up.run())
await asyncio.sleep_ms(500)
done(up.status())
""")
    assert got["last_error"] == "connection refused"
    assert got["state"] == "backoff"


class FakeBroker:
    """Accepts TCP; `mode` says how it misbehaves. Records every packet it receives."""

    def __init__(self, mode):
        self.mode = mode
        self.packets = []
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(4)
        self.port = self.srv.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _read_packet(self, c):
        h = c.recv(1)
        if not h:
            return None
        n, sh = 0, 0
        while True:
            b = c.recv(1)[0]
            n |= (b & 0x7F) << sh
            if not b & 0x80:
                break
            sh += 7
        body = b""
        while len(body) < n:
            chunk = c.recv(n - len(body))
            if not chunk:
                return None
            body += chunk
        return h[0], body

    def _serve(self, c):
        dropped_one = False
        try:
            while True:
                p = self._read_packet(c)
                if p is None:
                    return
                self.packets.append(p)
                op, body = p
                if self.mode == "silent":
                    continue  # never a CONNACK
                if op >> 4 == 1:
                    c.sendall(b"\x20\x02\x00\x00")
                elif op >> 4 == 3 and op & 0x06:
                    tl = body[0] << 8 | body[1]
                    pid = body[2 + tl:4 + tl]
                    if self.mode == "close-on-publish":
                        c.close()  # the broker dies with the message in flight
                        return
                    if self.mode == "drop-first-puback" and not dropped_one:
                        dropped_one = True
                        continue
                    c.sendall(b"\x40\x02" + pid)
                elif op >> 4 == 12 and self.mode != "no-pingresp":
                    c.sendall(b"\xd0\x00")
        except OSError:
            pass

    def close(self):
        self.srv.close()
        for c in self.conns:
            c.close()


@pytest.fixture
def fake():
    made = []

    def make(mode):
        f = FakeBroker(mode)
        made.append(f)
        return f

    yield make
    for f in made:
        f.close()


def test_no_connack_deadline_and_loop_keeps_running(mpy, fake):
    f = fake("silent")
    got = run(mpy, f"""
up = Uplink("mqtt://127.0.0.1:{f.port}", "perch-silent", timeout_ms=1500)
asyncio.create_task(up.run())
ticks = 0
worst = 0
t_end = time.ticks_add(time.ticks_ms(), 4000)
while time.ticks_diff(t_end, time.ticks_ms()) > 0:
    t = time.ticks_ms()
    await asyncio.sleep_ms(10)
    worst = max(worst, time.ticks_diff(time.ticks_ms(), t) - 10)
    ticks += 1
done([up.status(), ticks, worst])
""")
    st, ticks, worst = got
    assert st["last_error"] == "no CONNACK within 1500 ms"
    assert st["attempts"] >= 2  # it gave up and tried again
    assert ticks > 100  # the loop kept turning: no blocking read on the silent socket
    assert sum(1 for op, _ in f.packets if op >> 4 == 1) >= 2  # one CONNECT per attempt


def test_qos1_retransmits_with_dup_and_same_pid(mpy, fake):
    f = fake("drop-first-puback")
    got = run(mpy, f"""
up = Uplink("mqtt://127.0.0.1:{f.port}", "perch-dup001", timeout_ms=800)
asyncio.create_task(up.run())
await asyncio.wait_for_ms(up.wait_connected(), 5000)
await up.publish("t/x", "payload", False, 1)
done(up.status())
""")
    assert got["state"] == "connected"
    pubs = [(op, body) for op, body in f.packets if op >> 4 == 3]
    assert len(pubs) == 2
    (op1, b1), (op2, b2) = pubs
    assert not op1 & 0x08 and op2 & 0x08  # the resend carries DUP
    assert b1 == b2  # same topic, packet id and payload
    assert b1.endswith(b"payload")


def test_keepalive_pings_and_silent_broker_detected(mpy, fake):
    ok = fake("normal")
    deaf = fake("no-pingresp")
    got = run(mpy, f"""
a = Uplink("mqtt://127.0.0.1:{ok.port}", "perch-ka0001", keepalive_s=1, timeout_ms=1000)
b = Uplink("mqtt://127.0.0.1:{deaf.port}", "perch-ka0002", keepalive_s=1, timeout_ms=1000)
asyncio.create_task(a.run()); asyncio.create_task(b.run())
await asyncio.sleep_ms(3500)
done([a.status(), b.status()])
""")
    a, b = got
    assert a["state"] == "connected" and a["connects"] == 1
    assert sum(1 for op, _ in ok.packets if op == 0xC0) >= 3  # PINGREQ every ~0.5 s
    assert "keepalive" in (b["last_error"] or "")
    assert b["connects"] >= 1


def test_connect_packet_is_one_write_with_will(mpy, fake):
    f = fake("normal")
    run(mpy, f"""
up = Uplink("mqtt://dev:pw@127.0.0.1:{f.port}", "perch-will01", keepalive_s=30,
            status_topic="devices/perch-will01/status")
asyncio.create_task(up.run())
await asyncio.wait_for_ms(up.wait_connected(), 5000)
await asyncio.sleep_ms(100)
done(1)
""")
    op, body = f.packets[0]
    assert op == 0x10
    assert body[:6] == b"\x00\x04MQTT" and body[6] == 4
    flags = body[7]
    assert flags & 0x02 and flags & 0x04  # clean session, will
    assert flags & 0x20 and (flags >> 3) & 3 == 1  # will retained, QoS 1
    assert flags & 0xC0 == 0xC0  # user name and password
    assert b"perch-will01" in body and b"offline" in body
    # the birth: retained "online" on the status topic, QoS 1
    births = [(op, b) for op, b in f.packets if op >> 4 == 3]
    assert births and births[0][0] & 0x01 and births[0][1].endswith(b"online")
    json.dumps(1)


def test_publish_in_flight_when_the_link_dies_frees_the_reconnect(mpy, fake):
    f = fake("close-on-publish")
    got = run(mpy, f"""
up = Uplink("mqtt://127.0.0.1:{f.port}", "perch-drop01", timeout_ms=20000,
            backoff_max_ms=1000)
asyncio.create_task(up.run())
await asyncio.wait_for_ms(up.wait_connected(), 5000)
try:
    await up.publish("t/x", "payload", False, 1)
    r = "acknowledged?"
except UplinkError as e:
    r = str(e)
await asyncio.sleep_ms(2500)
done([r, up.status()])
""")
    err, st = got
    assert err == "connection closed by broker"
    # it reconnected although the PUBACK deadline (20 s) is far away: the dead link woke
    # the waiting publish, which released the connection for the next attempt
    assert st["connects"] >= 2


def _syn_black_hole():
    # a listener whose accept queue is full drops further SYNs: connect() never completes
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = srv.getsockname()[1]
    fill = []
    for _ in range(3):
        c = socket.socket()
        c.setblocking(False)
        try:
            c.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fill.append(c)
    return srv, fill, port


def test_tcp_connect_deadline_without_leaking_sockets(mpy):
    srv, fill, port = _syn_black_hole()
    try:
        got = run(mpy, f"""
import os
up = Uplink("mqtt://127.0.0.1:{port}", "perch-synbh", timeout_ms=700, backoff_max_ms=1000)
n0 = len(os.listdir("/proc/self/fd"))
asyncio.create_task(up.run())
await asyncio.sleep_ms(4000)
low = 99
for _ in range(20):  # an attempt in progress holds one socket: take the fewest seen
    low = min(low, len(os.listdir("/proc/self/fd")))
    await asyncio.sleep_ms(50)
done([up.status(), n0, low])
""")
    finally:
        srv.close()
        for c in fill:
            c.close()
    st, fds_before, fds_after = got
    assert st["last_error"] == "TCP connect to 127.0.0.1:%d timed out" % port
    assert st["attempts"] >= 3
    assert fds_after == fds_before  # every timed-out socket was closed
