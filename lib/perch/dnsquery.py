# A DNS A-record lookup with a deadline. socket.getaddrinfo() blocks the whole event
# loop until lwIP gives up (seconds, with no network); this asks the station's DNS
# server over a non-blocking UDP socket and polls, so the loop keeps running.

import asyncio
import random
import socket
import struct
import time

from micropython import const

_POLL_MS = const(10)


class DNSError(OSError):
    pass


def is_ip(host):
    parts = host.split(".")
    if len(parts) != 4:
        return ":" in host  # IPv6 literal
    for p in parts:
        if not p.isdigit() or int(p) > 255:
            return False
    return True


def _query(qid, host):
    q = bytearray(struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0))
    for label in host.encode().split(b"."):
        if not 0 < len(label) < 64:
            raise DNSError("bad host name %r" % host)
        q.append(len(label))
        q.extend(label)
    q.extend(b"\x00\x00\x01\x00\x01")  # root, QTYPE A, QCLASS IN
    return q


def _skip_name(m, i):
    while True:
        n = m[i]
        if n == 0:
            return i + 1
        if n & 0xC0 == 0xC0:
            return i + 2
        i += n + 1


def _answer(m, qid, host):
    if len(m) < 12:
        return None
    rid, flags, qd, an = struct.unpack_from("!HHHH", m, 0)
    if rid != qid or not flags & 0x8000:
        return None  # not the answer to our query
    rcode = flags & 0xF
    if rcode == 3:
        raise DNSError("host %s not found" % host)
    if rcode:
        raise DNSError("DNS server error %d for %s" % (rcode, host))
    i = 12
    for _ in range(qd):
        i = _skip_name(m, i) + 4
    for _ in range(an):
        i = _skip_name(m, i)
        typ, cls, _ttl, rdlen = struct.unpack_from("!HHIH", m, i)
        i += 10
        if typ == 1 and cls == 1 and rdlen == 4:
            return "%d.%d.%d.%d" % (m[i], m[i + 1], m[i + 2], m[i + 3])
        i += rdlen
    raise DNSError("no address for %s" % host)


async def resolve(host, timeout_ms, server=None, port=53):
    """IPv4 address of host as a string; DNSError or asyncio.TimeoutError past the deadline."""
    if not server:
        from perch import hw  # lazily: the unit tests run without a board

        server = hw.dns_server()
    if not server or server == "0.0.0.0":
        raise DNSError("no DNS server (no network?)")
    qid = random.getrandbits(16)
    q = _query(qid, host)
    addr = socket.getaddrinfo(server, port)[0][-1]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.setblocking(False)
        t0 = time.ticks_ms()
        resend = 0
        while True:
            el = time.ticks_diff(time.ticks_ms(), t0)
            if el >= timeout_ms:
                raise asyncio.TimeoutError()
            if el >= resend:
                s.sendto(q, addr)  # UDP may drop it: ask again every second
                resend += 1000
            try:
                m = s.recv(512)
            except OSError:
                m = None
            if m:
                ip = _answer(m, qid, host)
                if ip:
                    return ip
            await asyncio.sleep_ms(_POLL_MS)
    finally:
        s.close()
