# MQTT uplink: keeps one broker connection up and publishes over an asyncio stream, with a
# deadline on every step (DNS, TCP, TLS, CONNACK, PUBACK), never blocking the event loop.
#
# CONNECT and SUBSCRIBE are built by umqtt.simple 1.3.4, unmodified, in perch.mqttconnect,
# loaded per connection and dropped after (with umqtt). What a connected board does all the
# time is here and small: a PUBLISH is a few bytes of header, its PUBACK and PINGRESP are
# read by _reader, and so is an incoming PUBLISH (a command). Each packet goes out whole, in
# one write, so Nagle and delayed ACK never hold back its pieces.

import asyncio
import time

from micropython import const

from perch import log
from perch.config import drop

_RETRIES = const(3)  # PUBACK waits (first send + DUP resends) before the link is declared dead
_TICK_MS = const(200)

_log = log.Logger("mqtt")

TYPE_CHECKING = False
if TYPE_CHECKING:  # mypy takes the name as true; MicroPython ignores annotations
    from typing import Any


class UplinkError(Exception):
    pass


def _mc(name, *args):
    # mqttconnect.<name>(*args): connecting, failures and URL changes are rare, so their code
    # is loaded for each use and dropped after (a coroutine keeps it until it is done)
    from perch import mqttconnect

    try:
        return getattr(mqttconnect, name)(*args)
    finally:
        drop("mqttconnect")


class Uplink:
    """One broker connection, kept up by run(); publish() is safe to call from any task.

    on_msg(topic, msg) gets each message on sub_topic (subscribed on every connect); it must
    not raise (that would end the connection).
    """

    # set up by mqttconnect.init() and target() (annotations: MicroPython keeps none of them)
    url: str
    state: str
    last_error: Any
    attempts: int
    connects: int
    keepalive_s: int
    timeout_ms: int
    pid: int
    on_msg: Any
    _busy: bool
    _dead: Any
    _ev: Any
    _kick: Any
    _stream: Any
    _reader_task: Any

    def __init__(self, url, client_id, keepalive_s=60, timeout_ms=10000,
                 backoff_max_ms=60000, ca=None, status_topic=None, sub_topic=None,
                 on_msg=None):
        # the attributes are set up by code that runs once, like connecting
        _mc("init", self, url, client_id, keepalive_s, timeout_ms, backoff_max_ms, ca,
            status_topic, sub_topic, on_msg)

    # -- public ---------------------------------------------------------------------------
    async def wait_connected(self):
        while self.state != "connected":
            await self._ev.wait()
            self._ev.clear()

    async def publish(self, topic, msg, retain=False, qos=0):
        """Send one message; with QoS 1 return once the broker acknowledged it.

        Retransmits with DUP on a missing PUBACK; raises UplinkError when not connected or
        the link died. Never blocks the loop longer than one non-blocking socket write.
        """
        # the link is one task's at a time (a publish and its PUBACK, a SUBSCRIBE): a flag
        # polled when taken, rare and short, costs less RAM than asyncio.Lock's module
        while self._busy:
            await asyncio.sleep_ms(10)
        self._busy = True
        try:
            if self.state != "connected":
                raise UplinkError("not connected")
            # len() counts bytes: a str with non-ASCII characters must be bytes first
            if isinstance(topic, str):
                topic = topic.encode()
            if isinstance(msg, str):
                msg = msg.encode()
            # PUBLISH: header, remaining length (7 bits a byte), topic, packet id, payload
            n = len(topic) + len(msg) + (4 if qos else 2)
            pkt = bytearray((0x30 | qos << 1 | retain,))
            while n > 0x7F:
                pkt.append(n & 0x7F | 0x80)
                n >>= 7
            pkt.append(n)
            pkt.append(len(topic) >> 8)
            pkt.append(len(topic) & 0xFF)
            pkt.extend(topic)
            if qos:
                # MQTT's packet ids are 1..65535: 0 is invalid
                self.pid = pid = self.pid % 65535 + 1
                pkt.append(pid >> 8)
                pkt.append(pid & 0xFF)
            pkt.extend(msg)
            if not qos:
                return await self._send(pkt)
            self._ack = -1
            for _ in range(_RETRIES):
                self._ev.clear()
                await self._send(pkt)
                try:
                    while self._ack != pid:
                        if self._dead:
                            # the link died under us: give the link back for the reconnect
                            raise UplinkError(_mc("describe", self._dead))
                        await asyncio.wait_for_ms(self._ev.wait(), self.timeout_ms)
                        self._ev.clear()
                    return
                except asyncio.TimeoutError:
                    _log.warning("no PUBACK, resending", pid=pid)
                    pkt[0] |= 0x08  # DUP: same packet id, the broker may have it already
            self._die(UplinkError("no PUBACK within %d ms" % self.timeout_ms))
            raise UplinkError("no PUBACK")
        finally:
            self._busy = False

    async def run(self):
        """Connect, serve, reconnect with exponential backoff and jitter. Runs forever."""
        fails = 0
        while True:
            self.attempts += 1
            try:
                await _mc("connect", self)
                fails = 0
                # watch the link: keepalive pings, and a broker that went silent
                ka = self.keepalive_s * 1000
                while not self._dead:
                    now = time.ticks_ms()
                    if ka:
                        if time.ticks_diff(now, self._last_rx) > ka * 3 // 2:
                            raise UplinkError("broker silent for %d ms (keepalive)"
                                              % (ka * 3 // 2))
                        if time.ticks_diff(now, self._last_tx) >= ka // 2:
                            # not while a publish holds the link: it sends anyway
                            if not self._busy:
                                self._busy = True
                                try:
                                    await self._send(b"\xc0\x00")  # PINGREQ
                                finally:
                                    self._busy = False
                    await asyncio.sleep_ms(_TICK_MS)
                raise self._dead
            except Exception as e:  # every failure is reported and retried, never fatal
                fails += 1
                d = _mc("failed", self, e, fails)
            self._kick.clear()
            try:
                await asyncio.wait_for_ms(self._kick.wait(), d)
            except asyncio.TimeoutError:
                pass

    def close(self):
        """Stop reading and close the socket (a failed link, or quiet for an install)."""
        if self._reader_task:
            self._reader_task.cancel()
            self._reader_task = None
        if self._stream:
            try:
                self._stream.s.close()  # the stream's close() leaves its socket open
            except Exception:
                pass
            self._stream = None

    def status(self):
        return {"state": self.state, "broker": self.url, "last_error": self.last_error,
                "attempts": self.attempts, "connects": self.connects}

    # -- connection ---------------------------------------------------------------------
    async def _send(self, pkt):
        # the caller holds the link (_take), so only one task ever waits on the socket for writing
        w = self._stream
        if w is None:
            raise UplinkError("not connected")
        try:
            w.write(pkt)
            # write() already sent it unless the socket buffer was full: only then wait
            if getattr(w, "out_buf", True):
                await asyncio.wait_for_ms(w.drain(), self.timeout_ms)
        except asyncio.TimeoutError:
            self._die(UplinkError("send timed out"))
            raise UplinkError("send timed out")
        except OSError as e:
            # the broker went away mid-write: one error type for the callers
            self._die(e)
            raise UplinkError(_mc("describe", e))
        self._last_tx = time.ticks_ms()

    async def _reader(self, r):
        self._last_rx = time.ticks_ms()
        try:
            while True:
                kind = (await r.readexactly(1))[0]
                n = sh = 0
                while True:
                    b = (await r.readexactly(1))[0]
                    n |= (b & 0x7F) << sh
                    if not b & 0x80:
                        break
                    sh += 7
                    if sh > 21:
                        raise UplinkError("malformed packet length from broker")
                body = await r.readexactly(n) if n else b""
                self._last_rx = time.ticks_ms()
                if kind & 0xF0 == 0x40 and n >= 2:  # PUBACK
                    self._ack = body[0] << 8 | body[1]
                    self._ev.set()
                elif kind & 0xF0 == 0x20 and n >= 2:  # CONNACK
                    self._connack = body[1]
                    self._ev.set()
                elif kind & 0xF0 == 0x30 and n >= 2:  # PUBLISH: topic, [packet id], payload
                    b = 2 + (body[0] << 8 | body[1])
                    if kind & 6:  # QoS 1 (subscribed with 1, so never 2): ack it
                        r.write(b"\x40\x02" + body[b:b + 2])  # sent now, or at the next drain
                    if self.on_msg:
                        self.on_msg(body[2:b], body[b + (2 if kind & 6 else 0):])
                elif kind & 0xF0 == 0x90 and body[-1:] == b"\x80":
                    _log.warning("subscription refused by broker")
                # PINGRESP and SUBACK need nothing more: _last_rx already moved
        except asyncio.CancelledError:
            pass
        except Exception as e:
            self._die(e)

    def _die(self, e):
        if not self._dead:
            self._dead = e
        self._ev.set()  # wake whoever waits for a CONNACK or PUBACK
