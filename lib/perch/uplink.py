# MQTT uplink: umqtt.simple 1.3.4 wrapped so that it never blocks the event loop.
#
# umqtt.simple builds and parses packets on a blocking socket. Here it writes into and
# reads from an in-memory "wire" instead, and this module moves the bytes over an
# asyncio stream with a deadline on every step (DNS, TCP, TLS, CONNACK, PUBACK). That
# also fixes its ~44 ms QoS 1 latency: umqtt writes a packet in several small pieces,
# and Nagle plus delayed ACK hold the later pieces back; the wire hands us each packet
# whole, and it goes out in one write.

import asyncio
import errno
import random
import select
import socket
import ssl
import time

from micropython import const

from perch import log
from perch.brokerurl import UplinkError, parse_url, public_url
from perch.mqttwire import Client, as_bytes, varlen

_BACKOFF_MIN_MS = const(1000)
_RETRIES = const(3)  # PUBACK waits (first send + DUP resends) before the link is declared dead
_TICK_MS = const(200)
_POLL_MS = const(10)
_EPIPE = const(32)  # not in MicroPython's errno module

_CONNACK = {
    1: "broker refused the protocol version (CONNACK 1)",
    2: "broker rejected the client id (CONNACK 2)",
    3: "broker unavailable (CONNACK 3)",
    4: "bad user name or password (CONNACK 4)",
    5: "not authorised (CONNACK 5)",
}

_log = log.Logger("mqtt")


def describe(e):
    """A readable reason for a failed network step."""
    if isinstance(e, UplinkError):
        return str(e)
    if isinstance(e, asyncio.TimeoutError):
        return "timed out"
    if isinstance(e, EOFError):
        return "connection closed by broker"
    if isinstance(e, ValueError) and "cert" in str(e):
        return "mqtt.ca: %s" % e
    if isinstance(e, OSError):
        code = e.args[0] if e.args else 0
        if code == errno.ECONNREFUSED:
            return "connection refused"
        if code == errno.ECONNRESET:
            return "connection reset by broker"
        if code == _EPIPE:
            return "connection closed by broker (broken pipe)"
        if code in (errno.ETIMEDOUT, errno.EHOSTUNREACH):
            return "broker unreachable"
        if len(e.args) > 1 and isinstance(e.args[1], str):
            return "TLS: %s" % e.args[1]  # mbedTLS: (-9984, 'MBEDTLS_ERR_X509_...')
        if isinstance(code, int) and code <= -0x1000:
            return "TLS error -0x%04x" % -code
        return "socket error %s" % _why(e)
    return "%s: %s" % (type(e).__name__, e)


def _why(e):
    code = e.args[0] if e.args else 0
    if isinstance(code, int) and code < 0:
        return "no network?" if code > -0x1000 else "error %d" % code
    if isinstance(e, UplinkError):
        return str(e)
    name = errno.errorcode.get(code) if isinstance(code, int) else None
    return name or str(code)


class Uplink:
    """One broker connection, kept up by run(); publish() is safe to call from any task."""

    def __init__(self, url, client_id, keepalive_s=60, timeout_ms=10000,
                 backoff_max_ms=60000, ca=None, status_topic=None):
        self.client_id = client_id
        self.ca = ca
        self.keepalive_s = keepalive_s
        self.timeout_ms = timeout_ms
        self.backoff_max_ms = max(backoff_max_ms, _BACKOFF_MIN_MS)
        self.status_topic = status_topic
        self.state = "idle"
        self.last_error = None
        self.attempts = 0
        self.connects = 0
        self.last_backoff_ms = 0
        self._kick = asyncio.Event()
        self._target(url)
        self._subs = {}  # topic bytes -> handler(topic, msg)
        self._on_up = []  # async callables run after each (re)connect
        self._stream = None
        self._lock = asyncio.Lock()
        self._ack_ev = asyncio.Event()
        self._ack_pid = -1
        self._connack = -1
        self._up_ev = asyncio.Event()
        self._dead = None
        self._last_tx = 0
        self._last_rx = 0
        self._reader_task = None

    def _target(self, url):
        u = parse_url(url)
        self.url = public_url(url)
        self.host = u["host"]
        self.port = u["port"]
        self.tls = u["tls"]
        self._c = Client(self.client_id, u["user"], u["password"], self.keepalive_s)
        if self.status_topic:
            self._c.set_last_will(as_bytes(self.status_topic), b"offline", True, 1)
        self._c.set_callback(self._on_publish)

    # -- public ---------------------------------------------------------------------------
    def retarget(self, url):
        """Use another broker (the settings page changed mqtt.url): reconnect now."""
        self._target(url)  # UplinkError for a bad URL leaves the old target in place
        self._die(UplinkError("broker changed"))
        self.kick()

    def kick(self):
        """Cut a backoff wait short, e.g. when the station link just came up."""
        self._kick.set()

    @property
    def connected(self):
        return self.state == "connected"

    def subscribe(self, topic, handler):
        """Deliver messages on topic (exact match) to handler(topic, msg); kept on reconnect."""
        self._subs[as_bytes(topic)] = handler

    def on_connect(self, fn):
        self._on_up.append(fn)

    async def wait_connected(self):
        while not self.connected:
            self._up_ev.clear()
            await self._up_ev.wait()

    async def publish(self, topic, msg, retain=False, qos=0):
        """Send one message; with QoS 1 return once the broker acknowledged it.

        Retransmits with DUP on a missing PUBACK; raises UplinkError when not connected or
        the link died. Never blocks the loop longer than one non-blocking socket write.
        """
        async with self._lock:
            if not self.connected:
                raise UplinkError("not connected")
            pkt, pid = self._c.publish_packet(as_bytes(topic), as_bytes(msg), retain, qos)
            if qos == 0:
                await self._send(pkt)
                return
            self._ack_pid = -1
            for _ in range(_RETRIES):
                self._ack_ev.clear()
                await self._send(pkt)
                try:
                    while self._ack_pid != pid:
                        if self._dead:
                            # the link died under us: give the lock back for the reconnect
                            raise UplinkError(describe(self._dead))
                        await asyncio.wait_for_ms(self._ack_ev.wait(), self.timeout_ms)
                        self._ack_ev.clear()
                    return
                except asyncio.TimeoutError:
                    _log.warning("no PUBACK, resending", pid=pid)
                    pkt[0] |= 0x08  # DUP: same packet id, the broker may have it already
            self._die(UplinkError("no PUBACK within %d ms" % self.timeout_ms))
            raise UplinkError("no PUBACK")

    async def run(self):
        """Connect, serve, reconnect with exponential backoff and jitter. Runs forever."""
        fails = 0
        while True:
            self.attempts += 1
            try:
                await self._connect()
                fails = 0
                await self._serve()
            except Exception as e:  # every failure is reported and retried, never fatal
                self._fail(e)
            self._close()
            fails += 1
            await self._backoff(fails)

    def status(self):
        return {"state": self.state, "broker": self.url, "last_error": self.last_error,
                "attempts": self.attempts, "connects": self.connects}

    # -- connection ---------------------------------------------------------------------
    async def _resolve(self):
        # imported here: most brokers are IP literals, and RAM is short (SPEC §9)
        from perch import dnsquery

        h = self.host
        if h == "localhost" or dnsquery.is_ip(h):
            # no query on the wire, getaddrinfo answers at once
            return socket.getaddrinfo(h, self.port)[0][-1], h
        ip = await dnsquery.resolve(h, self.timeout_ms)
        return socket.getaddrinfo(ip, self.port)[0][-1], ip

    async def _connect(self):
        self.state = "connecting"
        self._dead = None
        try:
            addr, _ = await self._resolve()
        except asyncio.TimeoutError:
            raise UplinkError("DNS lookup of %s timed out" % self.host)
        except OSError as e:
            why = _why(e)
            if why == "no network?":
                raise UplinkError("no network: cannot resolve %s" % self.host)
            raise UplinkError("cannot resolve %s (%s)" % (self.host, why))
        ctx = None
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            # verify_mode is in every port's ssl module (extmod), not in the ESP32 stubs
            if self.ca:
                for der in _ca_certs(self.ca):
                    ctx.load_verify_locations(cadata=der)
                ctx.verify_mode = ssl.CERT_REQUIRED  # type: ignore[attr-defined]
            else:
                ctx.verify_mode = ssl.CERT_NONE  # type: ignore[attr-defined]
        w = await self._open(addr, ctx)
        self._stream = w
        r = w  # MicroPython's Stream reads and writes
        self._connack = -1
        self._ack_ev.clear()
        self._reader_task = asyncio.create_task(self._reader(r))
        async with self._lock:
            await self._send(self._c.connect_packet())
        try:
            while self._connack < 0:
                if self._dead:
                    raise self._dead
                await asyncio.wait_for_ms(self._ack_ev.wait(), self.timeout_ms)
                self._ack_ev.clear()
        except asyncio.TimeoutError:
            raise UplinkError("no CONNACK within %d ms" % self.timeout_ms)
        if self._connack:
            raise UplinkError(_CONNACK.get(self._connack, "CONNACK %d" % self._connack))
        self.state = "connected"
        self.connects += 1
        # last_error stays: it tells why the previous connection ended
        self._up_ev.set()
        _log.info("connected", broker=self.url)
        async with self._lock:
            for topic in self._subs:
                await self._send(self._c.subscribe_packet(topic, 1))
        if self.status_topic:
            await self.publish(self.status_topic, b"online", True, 1)
        for fn in self._on_up:
            await fn()

    async def _open(self, addr, ctx):
        # asyncio.open_connection() would leak its socket when a deadline cancels it; an
        # ESP32 has about ten, so connect here and close on every way out
        s = socket.socket()
        try:
            s.setblocking(False)
            try:
                s.connect(addr)
            except OSError as e:
                if e.args[0] != errno.EINPROGRESS:
                    raise
            p = select.poll()
            p.register(s, select.POLLOUT)
            t0 = time.ticks_ms()
            while not p.poll(0):  # writable (or failed: the first write says why)
                if time.ticks_diff(time.ticks_ms(), t0) > self.timeout_ms:
                    raise UplinkError("TCP connect to %s:%d timed out" % (self.host, self.port))
                await asyncio.sleep_ms(_POLL_MS)
            _nodelay(s)
            if ctx:
                # the handshake runs inside the first writes and reads, under their deadlines
                s = ctx.wrap_socket(s, server_hostname=self.host, do_handshake_on_connect=False)
            return asyncio.StreamWriter(s, {})
        except BaseException:
            s.close()
            raise

    async def _serve(self):
        # Watch the link: keepalive pings, and a broker that went silent.
        ka = self.keepalive_s * 1000
        while True:
            if self._dead:
                raise self._dead
            now = time.ticks_ms()
            if ka:
                if time.ticks_diff(now, self._last_rx) > ka * 3 // 2:
                    raise UplinkError("broker silent for %d ms (keepalive)" % (ka * 3 // 2))
                if time.ticks_diff(now, self._last_tx) >= ka // 2:
                    async with self._lock:
                        await self._send(b"\xc0\x00")  # PINGREQ
            await asyncio.sleep_ms(_TICK_MS)

    async def _send(self, pkt):
        # the caller holds self._lock, so only one task ever waits on the socket for writing
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
            raise UplinkError(describe(e))
        self._last_tx = time.ticks_ms()

    async def _reader(self, r):
        self._last_rx = time.ticks_ms()
        try:
            while True:
                hdr = await r.readexactly(1)
                n = 0
                sh = 0
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
                self._dispatch(hdr[0], body)
        except asyncio.CancelledError:
            pass
        except Exception as e:
            self._die(e)

    def _dispatch(self, op, body):
        kind = op & 0xF0
        if kind == 0x40 and len(body) >= 2:  # PUBACK
            self._ack_pid = body[0] << 8 | body[1]
            self._ack_ev.set()
        elif kind == 0x20 and len(body) >= 2:  # CONNACK
            self._connack = body[1]
            self._ack_ev.set()
        elif kind == 0x30:  # PUBLISH: umqtt parses it and calls _on_publish
            hdr = varlen(op, len(body))
            ack = self._c.incoming_publish(hdr + body)
            if ack and self._stream:
                # a 4-byte PUBACK; write() sends it now or queues it for the next drain
                try:
                    self._stream.write(ack)
                except OSError as e:
                    self._die(e)
        elif kind == 0x90 and body[-1:] == b"\x80":
            _log.warning("subscription refused by broker")
        # PINGRESP and SUBACK need nothing more: _last_rx already moved

    def _on_publish(self, topic, msg):
        h = self._subs.get(bytes(topic))
        if h:
            try:
                h(topic, msg)
            except Exception as e:
                _log.exc(e, "message handler failed", topic=topic)

    def _die(self, e):
        if not self._dead:
            self._dead = e
        self._ack_ev.set()  # wake whoever waits for a CONNACK or PUBACK

    def _fail(self, e):
        msg = describe(e)
        if self.state == "connected":
            _log.warning("connection lost", broker=self.url, error=msg)
        elif msg != self.last_error:
            _log.warning("connect failed", broker=self.url, error=msg)
        else:
            # the same failure again: the console needs it once, not every backoff
            _log.debug("connect failed again", broker=self.url, error=msg,
                       attempts=self.attempts)
        self.last_error = msg
        self.state = "backoff"

    def _close(self):
        if self._reader_task:
            self._reader_task.cancel()
            self._reader_task = None
        if self._stream:
            try:
                self._stream.close()
            except Exception:
                pass
            self._stream = None
        self._up_ev.clear()
        if self.state == "connected":
            self.state = "backoff"

    async def _backoff(self, fails):
        # exponential, capped, with "equal jitter": half fixed, half random, so a fleet
        # that lost the same broker does not come back in lock-step
        d = _BACKOFF_MIN_MS << min(fails - 1, 10)
        if d > self.backoff_max_ms:
            d = self.backoff_max_ms
        d = d // 2 + random.getrandbits(16) % (d // 2 + 1)
        self.last_backoff_ms = d
        self.state = "backoff"
        self._kick.clear()
        try:
            await asyncio.wait_for_ms(self._kick.wait(), d)
        except asyncio.TimeoutError:
            pass


def _ca_certs(path):
    # mbedTLS wants DER here (PEM needs a trailing NUL): accept either, several PEM certs too
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        raise UplinkError("mqtt.ca: cannot read %s" % path)
    if b"-----BEGIN" not in data:
        return [data]
    import binascii

    out = []
    for block in data.split(b"-----BEGIN CERTIFICATE-----")[1:]:
        b64 = block.split(b"-----END", 1)[0]
        out.append(binascii.a2b_base64(b64.replace(b"\r", b"").replace(b"\n", b"")))
    if not out:
        raise UplinkError("mqtt.ca: no certificate in %s" % path)
    return out


def _nodelay(s):
    # belt and braces: packets already go out whole, but a PUBACK-sized write should not
    # wait for an ACK either
    try:
        s.setsockopt(getattr(socket, "IPPROTO_TCP", 6), getattr(socket, "TCP_NODELAY", 1), 1)
    except Exception:
        pass
