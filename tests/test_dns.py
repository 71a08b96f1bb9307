"""Captive DNS: the packet codec under the Unix port, and the responder over real UDP."""

import random
import socket
import time

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from conftest import REPO, write_world

AP_IP = "192.168.4.1"

# Runs perch.dns.answer() on every hex line of queries.txt; prints one hex reply or NONE.
CODEC = """
import binascii
from perch import dns
for line in open("queries.txt"):
    line = line.strip()
    r = dns.answer(binascii.unhexlify(line)) if line else None
    print("NONE" if r is None else binascii.hexlify(r).decode())
print("END")
"""


def run_codec(mpy, tmp_path, packets):
    (tmp_path / "queries.txt").write_text("".join(p.hex() + "\n" for p in packets))
    # The module also holds the captive redirect, which imports the board's modules.
    res = mpy(CODEC, path=[REPO / "tools" / "sim" / "board"],
              env={"PERCH_SIM_WORLD": "/nonexistent"})
    assert res.returncode == 0, res.err
    lines = res.lines()
    assert lines[-1] == "END"
    out = lines[:-1]
    assert len(out) == len(packets)
    return [None if x == "NONE" else bytes.fromhex(x) for x in out]


def test_codec_answers_a_with_ap_ip_and_other_types_empty(mpy, tmp_path):
    qs = [dns.message.make_query(name, t) for name, t in (
        ("connectivitycheck.gstatic.com", "A"), ("captive.apple.com", "AAAA"),
        ("www.msftconnecttest.com", "HTTPS"), ("detectportal.firefox.com", "MX"),
        ("example.org", "TXT"), ("xn--caf-dma.example", "A"))]
    replies = run_codec(mpy, tmp_path, [q.to_wire() for q in qs])
    for q, wire in zip(qs, replies):
        r = dns.message.from_wire(wire)
        assert q.is_response(r)
        assert r.rcode() == dns.rcode.NOERROR
        assert r.flags & dns.flags.QR and r.flags & dns.flags.AA
        if q.question[0].rdtype == dns.rdatatype.A:
            assert [str(rd) for rd in r.answer[0]] == [AP_IP]
            assert r.answer[0].name == q.question[0].name
        else:
            assert r.answer == []


def test_codec_keeps_edns0_parseable(mpy, tmp_path):
    qs = [
        dns.message.make_query("example.com", "A", use_edns=0, payload=1232),
        dns.message.make_query("example.com", "AAAA", use_edns=0, payload=4096,
                               options=[dns.edns.GenericOption(10, b"\x01" * 8)]),  # cookie
        dns.message.make_query("example.com", "A", use_edns=0, want_dnssec=True),
    ]
    replies = run_codec(mpy, tmp_path, [q.to_wire() for q in qs])
    for q, wire in zip(qs, replies):
        r = dns.message.from_wire(wire)
        assert q.is_response(r)
        assert r.edns == 0
        assert r.payload == 512
        assert r.rcode() == dns.rcode.NOERROR
    assert [str(rd) for rd in dns.message.from_wire(replies[0]).answer[0]] == [AP_IP]


def test_codec_rejects_truncated_and_malformed(mpy, tmp_path):
    good = dns.message.make_query("portal.example", "A", use_edns=0).to_wire()
    truncated = [good[:n] for n in range(0, len(good) - 12)]  # cut inside header/question
    response = bytearray(good)
    response[2] |= 0x80  # QR set: a reply must never be answered (no loops)
    two_q = bytearray(good)
    two_q[5] = 2
    pointer = good[:12] + b"\xc0\x0c\x00\x01\x00\x01"  # compression loop in the question
    long_name = good[:12] + (b"\x3f" + b"a" * 63) * 5 + b"\x00\x00\x01\x00\x01"
    status_op = bytearray(good)
    status_op[2] = (status_op[2] & 0x87) | (2 << 3)
    status_op = bytes(status_op)
    packets = truncated + [bytes(response), bytes(two_q), pointer, long_name, status_op]
    replies = run_codec(mpy, tmp_path, packets)
    for p, r in zip(packets, replies):
        if len(p) < 12:
            assert r is None
            continue
        if p is packets[len(truncated)]:
            assert r is None
            continue
        assert r is not None, p.hex()
        msg = dns.message.from_wire(r, question_only=True)
        assert msg.id == int.from_bytes(p[:2], "big")
        if p is status_op:
            continue
        assert msg.rcode() == dns.rcode.FORMERR, p.hex()
    assert dns.message.from_wire(replies[-1]).rcode() == dns.rcode.NOTIMP


def test_codec_survives_garbage(mpy, tmp_path):
    rng = random.Random(1234)
    packets = [bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 600)))
               for _ in range(400)]
    replies = run_codec(mpy, tmp_path, packets)
    for p, r in zip(packets, replies):
        if r is not None:
            assert r[:2] == p[:2]  # a reply always echoes the id
            assert r[2] & 0x80  # and is marked as a response


def _query(port, name, rdtype, timeout=2.0):
    q = dns.message.make_query(name, rdtype)
    return dns.query.udp(q, "127.0.0.1", port=port, timeout=timeout)


@pytest.fixture
def ap_board(board, tmp_path):
    world = write_world(tmp_path / "w.json", [
        {"ssid": "Home", "password": "secret123", "rssi": -50, "channel": 6}], scan_ms=200)
    b = board(world=world)
    return b


def test_dns_over_udp_in_ap_mode(ap_board):
    b = ap_board
    assert b.status()["mode"] == "ap"
    r = _query(b.dns_port, "connectivitycheck.gstatic.com", "A")
    assert [str(rd) for rd in r.answer[0]] == [AP_IP]
    for t in ("AAAA", "HTTPS"):
        r = _query(b.dns_port, "captive.apple.com", t)
        assert r.rcode() == dns.rcode.NOERROR and r.answer == []
    q = dns.message.make_query("example.com", "A", use_edns=0, payload=1232)
    r = dns.query.udp(q, "127.0.0.1", port=b.dns_port, timeout=2)
    assert r.edns == 0 and [str(rd) for rd in r.answer[0]] == [AP_IP]


def test_dns_flood_then_still_answering(ap_board):
    b = ap_board
    rng = random.Random(7)
    good = [dns.message.make_query("host%d.example" % i, "A").to_wire() for i in range(50)]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    answered = 0
    for i in range(10_000):
        if i % 10 == 0:
            pkt = bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 80)))
        else:
            pkt = good[i % len(good)]
        try:
            s.sendto(pkt, ("127.0.0.1", b.dns_port))
        except BlockingIOError:
            pass
        while True:
            try:
                s.recv(600)
                answered += 1
            except BlockingIOError:
                break
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            s.recv(600)
            answered += 1
        except BlockingIOError:
            time.sleep(0.01)
    s.close()
    assert answered > 0
    r = _query(b.dns_port, "after.flood.example", "A")
    assert [str(rd) for rd in r.answer[0]] == [AP_IP]
    assert b.get("/api/status").status_code == 200
    assert "Traceback" not in b.log()


def test_dns_only_in_ap_mode(board, tmp_path):
    world = write_world(tmp_path / "w.json", [
        {"ssid": "Home", "password": "secret123", "rssi": -50, "channel": 6}], scan_ms=200)
    b = board(world=world, env={"PERCH_AP_LINGER_S": "0"},
              config={"wifi": {"networks": [{"ssid": "Home", "password": "secret123"}]}})
    deadline = time.monotonic() + 15
    while b.status()["mode"] != "sta" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert b.status()["mode"] == "sta"
    with pytest.raises(dns.exception.Timeout):
        _query(b.dns_port, "example.com", "A", timeout=1.0)


def test_dns_gives_its_ram_to_an_install_and_comes_back_if_it_fails(ap_board):
    # An install takes all the RAM there is and reboots when done: meanwhile the responder
    # is down (its code dropped); an install that fails brings it back.
    b = ap_board
    assert _query(b.dns_port, "example.com", "A").answer
    s = socket.create_connection(("127.0.0.1", b.http_port), timeout=5)
    s.sendall(b"POST /api/ota/upload HTTP/1.1\r\nHost: 127.0.0.1\r\n"
              b"Content-Length: 1000000\r\n\r\n")  # and no body yet: the install waits
    deadline = time.monotonic() + 10
    while b.status()["ota"]["state"] != "installing" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert b.status()["ota"]["state"] == "installing"
    time.sleep(0.5)
    with pytest.raises(dns.exception.Timeout):
        _query(b.dns_port, "example.com", "A", timeout=1.0)
    s.close()  # the upload is interrupted: the install fails
    deadline = time.monotonic() + 10
    while b.status()["ota"]["state"] == "installing" and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    r = _query(b.dns_port, "example.com", "A")
    assert [str(rd) for rd in r.answer[0]] == [AP_IP]
    assert "Traceback" not in b.log()
