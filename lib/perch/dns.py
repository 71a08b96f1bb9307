# The captive side of the setup access point, loaded by perch.wifi when the AP comes up
# and dropped when it goes down or an install starts (the supervisor brings it back if the
# install fails):
# - a DNS responder: every A query is answered with the AP address so that phones open the
#   portal; every other type gets NOERROR with no answer, which makes clients fall back to
#   IPv4 instead of waiting for a timeout;
# - the HTTP redirect (httpguard calls it before routing): any Host that is not the device
#   gets 302 to the portal, which pops up the sign-in sheet.
#
# MicroPython's asyncio has no datagram endpoint and its I/O queue is private, so the
# responder polls the UDP socket with select.poll (ipoll allocates nothing): it drains what
# is pending, yields to the loop, polls every ms for a while after traffic, and naps 15 ms
# at a time when idle.
import asyncio
import select
import socket

from micropython import const

from perch import auth, wifi
from perch.config import drop

_QR = const(0x80)
_OPCODE = const(0x78)
_RD = const(0x01)
_IDLE_MS = const(15)
_BURST = const(16)
_HOT = const(50)  # empty polls, 1 ms apart, before the idle naps start
# Name pointer to the question, type A, class IN, TTL 60 s, 4 bytes: 192.168.4.1
_ANSWER = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\xc0\xa8\x04\x01"
# EDNS0 OPT: root name, type 41, our UDP size 512, ext-rcode/version/flags 0, no data
_OPT = b"\x00\x00\x29\x02\x00\x00\x00\x00\x00\x00\x00"

_sock = None
_task = None


def answer(p):
    """Reply bytes for query packet p, or None when p must be dropped."""
    n = len(p)
    if n < 12 or p[2] & _QR:
        return None  # too short to even echo an id, or a response: never reply (no loops)
    rcode = 1  # FORMERR unless the question parses
    if p[2] & _OPCODE:
        rcode = 4  # NOTIMP
    elif not (p[4] or p[5] != 1 or p[6] or p[7] or p[8] or p[9]):
        # One question and no answer/authority records, like every stub resolver. Its name
        # has plain labels only: a compression pointer in a question is malformed.
        end = 12
        while end < n and 0 < p[end] < 0x40:
            end += 1 + p[end]
        end += 5  # the root label, type and class
        if end <= n and end <= 12 + 255 + 4 and not p[end - 5]:
            rcode = 0
    if rcode:
        # Header only: a reply to a malformed query cannot trust its question.
        return bytes((p[0], p[1], _QR | (p[2] & (_OPCODE | _RD)), rcode, 0, 0, 0, 0, 0, 0, 0, 0))
    a = p[end - 4] == 0 and p[end - 3] == 1 and p[end - 2] == 0 and p[end - 1] == 1  # A, IN
    # EDNS0: stub resolvers put their OPT record (root name, type 41) first among the
    # additional records; echo one back so that they keep parsing our answer.
    edns = (p[10] or p[11]) and end + 3 <= n and p[end] == 0 and p[end + 1] == 0 and (
        p[end + 2] == 41)
    r = bytearray(p[:end])
    r[2] = _QR | 0x04 | (p[2] & _RD)  # QR, AA, copy RD
    r[3] = 0
    r[6] = 0
    r[7] = a
    r[10] = 0
    r[11] = 1 if edns else 0
    if a:
        r += _ANSWER
    if edns:
        r += _OPT
    return r


async def _serve(s):
    poller = select.poll()
    poller.register(s, select.POLLIN)
    quiet = _HOT
    while True:
        got = 0
        while got < _BURST:
            for _ in poller.ipoll(0):
                break
            else:
                break  # nothing pending
            got += 1
            try:
                p, addr = s.recvfrom(520)
                r = answer(p)
                if r:
                    s.sendto(r, addr)
            except OSError:
                break  # EAGAIN, or the client went away: try again after a yield
            except Exception as e:  # noqa: BLE001 - one bad packet must not stop DNS
                wifi._log.warning("dns packet", err=repr(e))
        # Right after traffic, look again every ms: a client's next query is usually on its
        # way, and a 15 ms nap per burst would cap a busy client at about 1000 answers/s.
        quiet = 0 if got else quiet + 1
        if quiet > _HOT and wifi.installing():
            break
        await asyncio.sleep_ms(0 if got else 1 if quiet < _HOT else _IDLE_MS)
    # An install needs all the RAM there is, and reboots when done: the responder gives its
    # code and socket back meanwhile; perch.wifi's supervisor starts it again if it fails.
    global _task
    _task = None  # a task cannot cancel itself
    stop()
    drop("dns")


def start(port):
    global _sock, _task
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(socket.getaddrinfo("0.0.0.0", port)[0][-1])
    s.setblocking(False)
    _sock = s
    _task = asyncio.create_task(_serve(s))
    wifi._log.info("captive DNS up", port=port)
    wifi.ctx.guard.redirect = redirect


def stop():
    wifi.ctx.guard.redirect = None
    if _task:
        _task.cancel()
    if _sock:
        _sock.close()


def redirect(host, peer):
    """Where httpguard sends a request for host: None for the device's own names, else
    the portal on the address this client reaches us on (loopback for local clients, the
    AP address on the setup network, else the station address)."""
    ctx = wifi.ctx
    if auth.own_host(ctx, host):
        return None
    ip = ""
    if isinstance(peer, tuple):  # the ESP32's peername
        ip = peer[0]
    elif isinstance(peer, (bytes, bytearray)) and len(peer) >= 8:  # a raw sockaddr_in
        ip = "%d.%d.%d.%d" % (peer[4], peer[5], peer[6], peer[7])
    if ip.startswith("127."):
        ip = "127.0.0.1"
    elif ip.startswith("192.168.4.") or not wifi.link:
        ip = auth.AP_IP
    else:
        ip = wifi.station_ip() or auth.AP_IP
    port = ctx.cfg["http.port"]
    return "http://%s/" % ip if port == 80 else "http://%s:%d/" % (ip, port)
