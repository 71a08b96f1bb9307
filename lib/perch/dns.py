# Captive DNS responder: every A query is answered with the AP address so that
# phones open the portal; every other type gets NOERROR with no answer, which
# makes clients fall back to IPv4 instead of waiting for a timeout.
#
# MicroPython's asyncio has no datagram endpoint and its I/O queue is private,
# so the server polls the UDP socket with select.poll (ipoll allocates nothing):
# it drains what is pending, yields to the loop, and naps a few ms when idle.
import asyncio
import select
import socket

from micropython import const

_HDR = const(12)
_QR = const(0x80)
_OPCODE = const(0x78)
_RD = const(0x01)
_T_A = const(1)
_T_OPT = const(41)
_C_IN = const(1)
_RC_FORMERR = const(1)
_RC_NOTIMP = const(4)
_TTL = const(60)
_EDNS_SIZE = const(512)
_MAX_NAME = const(255)
_IDLE_MS = const(15)
_BURST = const(16)
_EAGAIN = const(11)


def _skip_name(p, i):
    # Questions carry plain labels; a compression pointer here is malformed.
    n = len(p)
    start = i
    while True:
        if i >= n:
            return -1
        ln = p[i]
        if ln == 0:
            i += 1
            return i if i - start <= _MAX_NAME else -1
        if ln & 0xC0:
            return -1
        i += 1 + ln


def _err(p, rcode):
    # Header only, question dropped: a FORMERR reply cannot trust the question.
    return bytes((p[0], p[1], _QR | (p[2] & (_OPCODE | _RD)), rcode, 0, 0, 0, 0, 0, 0, 0, 0))


def _has_opt(p, i, arcount):
    # Looks for an EDNS0 OPT record (root name, type 41) in the additional
    # section; answer/authority sections are empty in sane queries.
    n = len(p)
    while arcount > 0:
        j = _skip_name(p, i)
        if j < 0 or j + 10 > n:
            return False
        if p[j] == 0 and p[j + 1] == _T_OPT:
            return True
        i = j + 10 + ((p[j + 8] << 8) | p[j + 9])
        arcount -= 1
    return False


def answer(p, ip):
    """Reply bytes for query packet p, or None when p must be dropped.

    ip is the 4-byte address put in A answers."""
    n = len(p)
    if n < _HDR or p[2] & _QR:
        # Too short to even echo an id, or a response: never reply (no loops).
        return None
    if p[2] & _OPCODE:
        return _err(p, _RC_NOTIMP)
    qd = (p[4] << 8) | p[5]
    if qd != 1 or p[6] or p[7] or p[8] or p[9]:
        # One question and no answer/authority records, like every stub resolver.
        return _err(p, _RC_FORMERR)
    q_end = _skip_name(p, _HDR)
    if q_end < 0 or q_end + 4 > n:
        return _err(p, _RC_FORMERR)
    qtype = (p[q_end] << 8) | p[q_end + 1]
    qclass = (p[q_end + 2] << 8) | p[q_end + 3]
    q_end += 4
    ar = (p[10] << 8) | p[11]
    edns = ar and _has_opt(p, q_end, ar)
    an = 1 if qtype == _T_A and qclass == _C_IN else 0
    out = bytearray(p[:q_end])
    out[2] = _QR | 0x04 | (p[2] & _RD)  # QR, AA, copy RD
    out[3] = 0
    out[6] = 0
    out[7] = an
    out[10] = 0
    out[11] = 1 if edns else 0
    if an:
        out += b"\xc0\x0c\x00\x01\x00\x01\x00\x00"
        out.append(0)
        out.append(_TTL)
        out += b"\x00\x04"
        out += ip
    if edns:
        # Root name, type OPT, our UDP size, ext-rcode/version/flags 0, no data.
        out += b"\x00\x00\x29"
        out.append(_EDNS_SIZE >> 8)
        out.append(_EDNS_SIZE & 0xFF)
        out += b"\x00\x00\x00\x00\x00\x00"
    return out


def ip_bytes(ip):
    return bytes(int(x) for x in ip.split("."))


class Server:
    """UDP captive DNS on port, answering A queries with ip (dotted string)."""

    def __init__(self, port, ip, log=None):
        self.port = port
        self.ip = ip_bytes(ip)
        self.log = log
        self.answered = 0
        self.dropped = 0
        self._sock = None
        self._task = None

    def start(self):
        if self._task is None:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(socket.getaddrinfo("0.0.0.0", self.port)[0][-1])
            s.setblocking(False)
            self._sock = s
            self._task = asyncio.create_task(self._run(s))
            if self.log:
                self.log.info("captive DNS up", port=self.port)

    def stop(self):
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            if self.log:
                self.log.info("captive DNS down")

    def running(self):
        return self._task is not None

    async def _run(self, s):
        poller = select.poll()
        poller.register(s, select.POLLIN)
        while True:
            got = 0
            while got < _BURST:
                ready = False
                for _ in poller.ipoll(0):
                    ready = True
                if not ready:
                    break
                try:
                    p, addr = s.recvfrom(520)
                except OSError as e:
                    if e.errno != _EAGAIN and self.log:
                        self.log.warning("dns recv", err=e.errno)
                    break
                got += 1
                try:
                    r = answer(p, self.ip)
                    if r is None:
                        self.dropped += 1
                    else:
                        s.sendto(r, addr)
                        self.answered += 1
                except Exception as e:  # noqa: BLE001 - one bad packet must not stop DNS
                    self.dropped += 1
                    if self.log:
                        self.log.warning("dns packet", err=repr(e))
            await asyncio.sleep_ms(0 if got else _IDLE_MS)
