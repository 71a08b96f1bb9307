# Connecting to the broker, backing off after a failure, readable reasons for failures, and
# setting up the client for a broker URL (SPEC §5): the uplink loads this module for each of
# these and drops it after, so that a connected board does not keep code it runs once per
# connection.
#
# umqtt.simple (unmodified) builds CONNECT and SUBSCRIBE on a blocking socket. Here its socket
# is _WIRE, in RAM: each umqtt call runs synchronously against it and stops at its first read
# (the answer it would block on is the uplink's to wait for). umqtt is imported for a connect
# and dropped after: publishing needs none of it.

import asyncio
import errno
import random
import select
import socket
import sys
import time

from perch import uplink
from perch.config import drop


class _Wire:
    """umqtt.simple's socket, and its `socket` module: collects writes; a read ends the call."""

    out: bytearray

    def write(self, buf, n=-1):
        self.out.extend(buf if n < 0 else memoryview(buf)[:n])

    def read(self, n):
        raise EOFError  # umqtt waits for the broker's answer: the packet is built

    def socket(self, *a):
        return self

    # in umqtt's connect(), getaddrinfo(...)[0][-1] is the wire too; the rest do nothing
    getaddrinfo = __getitem__ = connect = setblocking = close = socket


def _run(w, fn, *args):
    # one umqtt call against the wire; returns the bytes it wrote (a fresh bytearray)
    w.out = bytearray()
    try:
        fn(*args)
    except EOFError:
        pass
    return w.out


def _b(s):
    # umqtt counts len(): a str with non-ASCII characters must be bytes first
    return s.encode() if isinstance(s, str) else s


def _packets(up):
    # CONNECT (with the will) and SUBSCRIBE, from a umqtt client made for them and dropped
    import umqtt.simple as m

    try:
        w = _Wire()
        m.socket = w  # type: ignore  # umqtt's connect() opens its socket through this global
        c = m.MQTTClient(_b(up.client_id), "", 1, _b(up.user), _b(up.password), up.keepalive_s)
        c.sock = w
        if up.status_topic:
            c.set_last_will(_b(up.status_topic), b"offline", True, 1)
        sub = None
        if up.sub_topic:
            c.set_callback(up.on_msg)
            c.pid = up.pid % 65535  # a SUBSCRIBE's id must not be one a PUBLISH waits on
            sub = _run(w, c.subscribe, _b(up.sub_topic), 1)
            up.pid = c.pid
        return _run(w, c.connect), sub
    finally:
        sys.modules.pop("umqtt.simple", None)
        sys.modules.pop("umqtt", None)


async def connect(up):
    """DNS, TCP, TLS, CONNECT and CONNACK, each under a deadline; then subscribe and birth."""
    up.state = "connecting"
    up._dead = None
    h = up.host
    try:
        if h != "localhost" and not (":" in h or h.replace(".", "").isdigit()):
            # a name: ask the DNS server without blocking the loop (loaded on use: most
            # brokers are IP literals, and RAM is short, SPEC §9)
            from perch import dnsquery

            try:
                h = await dnsquery.resolve(h, up.timeout_ms)
            finally:
                drop("dnsquery")
        addr = socket.getaddrinfo(h, up.port)[0][-1]
    except asyncio.TimeoutError:
        raise uplink.UplinkError("DNS lookup of %s timed out" % up.host)
    except OSError as e:
        c = e.args[0] if e.args else 0
        if isinstance(c, int) and -0x1000 < c < 0:
            raise uplink.UplinkError("no network: cannot resolve %s" % up.host)
        raise uplink.UplinkError("cannot resolve %s (%s)" % (up.host, errno.errorcode.get(c, c)))
    ctx = None
    if up.tls:
        ctx = _tls_context(up.ca)
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
            if time.ticks_diff(time.ticks_ms(), t0) > up.timeout_ms:
                raise uplink.UplinkError("TCP connect to %s:%d timed out" % (up.host, up.port))
            await asyncio.sleep_ms(10)
        del p
        try:
            # packets already go out whole, but a PUBACK should not wait for an ACK either
            s.setsockopt(6, 1, 1)  # IPPROTO_TCP, TCP_NODELAY
        except Exception:
            pass
        if ctx:
            # the handshake runs inside the first writes and reads, under their deadlines
            s = ctx.wrap_socket(s, server_hostname=up.host, do_handshake_on_connect=False)
        up._stream = asyncio.StreamWriter(s, {})
    except BaseException:
        s.close()
        raise
    up._connack = -1
    up._ev.clear()
    con, sub = _packets(up)
    up._reader_task = asyncio.create_task(up._reader(up._stream))
    # nobody else sends before the state says connected
    await up._send(con)
    try:
        while up._connack < 0:
            if up._dead:
                raise up._dead
            await asyncio.wait_for_ms(up._ev.wait(), up.timeout_ms)
            up._ev.clear()
    except asyncio.TimeoutError:
        raise uplink.UplinkError("no CONNACK within %d ms" % up.timeout_ms)
    c = up._connack
    if c:
        raise uplink.UplinkError(
            ("broker refused the protocol version", "broker rejected the client id",
             "broker unavailable", "bad user name or password",
             "not authorised")[c - 1] + " (CONNACK %d)" % c if c < 6 else "CONNACK %d" % c)
    up.state = "connected"
    up.connects += 1
    # last_error stays: it tells why the previous connection ended
    up._ev.set()
    uplink._log.info("connected", broker=up.url)
    if sub:
        while up._busy:  # the pump may publish already
            await asyncio.sleep_ms(10)
        up._busy = True
        try:
            await up._send(sub)
        finally:
            up._busy = False
    if up.status_topic:
        await up.publish(up.status_topic, b"online", True, 1)


def init(up, url, client_id, keepalive_s, timeout_ms, backoff_max_ms, ca, status_topic,
         sub_topic, on_msg):
    """Uplink.__init__'s work."""
    up.client_id = client_id
    up.ca = ca
    up.keepalive_s = keepalive_s
    up.timeout_ms = timeout_ms
    up.backoff_max_ms = backoff_max_ms
    up.status_topic = status_topic
    up.sub_topic = sub_topic
    up.on_msg = on_msg
    up.state = "idle"
    up.last_error = None
    up.attempts = 0
    up.connects = 0
    up.last_backoff_ms = 0
    up._kick = asyncio.Event()
    up._ev = asyncio.Event()  # a CONNACK or PUBACK came, the link died, or it came up
    up._busy = False  # a task is sending or waiting for its PUBACK (see publish)
    up._stream = None
    up._ack = -1  # last PUBACK's packet id
    up._connack = -1
    up._dead = None
    up._last_tx = up._last_rx = 0
    up._reader_task = None
    up.pid = 0  # the last PUBLISH's packet id
    target(up, url)  # UplinkError for a bad URL


def target(up, url):
    """Point up's MQTT client at url (UplinkError when the URL is bad)."""
    from perch import brokerurl  # parsing is needed once per URL: loaded and dropped

    try:
        u = brokerurl.parse_url(url)
        up.url = brokerurl.public_url(url)
    finally:
        drop("brokerurl")
    up.host, up.port, up.tls = u["host"], u["port"], u["tls"]
    up.user, up.password = u["user"], u["password"]


def failed(up, e, fails):
    """Report a failed attempt or a lost link and close it; returns the backoff in ms."""
    msg = describe(e)
    if up.state == "connected":
        uplink._log.warning("connection lost", broker=up.url, error=msg)
    elif msg != up.last_error:
        uplink._log.warning("connect failed", broker=up.url, error=msg)
    # the same failure again: the console needs it once, not every backoff
    up.last_error = msg
    up.close()
    up.state = "backoff"
    # exponential, capped, with "equal jitter": half fixed, half random, so a fleet that
    # lost the same broker does not come back in lock-step
    d = min(1000 << min(fails - 1, 10), max(up.backoff_max_ms, 1000))
    d = d // 2 + random.getrandbits(16) % (d // 2 + 1)
    up.last_backoff_ms = d
    return d


def describe(e):
    """A readable reason for a failed network step."""
    if isinstance(e, uplink.UplinkError):
        return str(e)
    if isinstance(e, asyncio.TimeoutError):
        return "timed out"
    if isinstance(e, EOFError):
        return "connection closed by broker"
    if isinstance(e, OSError):
        c = e.args[0] if e.args else 0
        if c == errno.ECONNREFUSED:
            return "connection refused"
        if c == errno.ECONNRESET:
            return "connection reset by broker"
        if c == 32:  # EPIPE, not in MicroPython's errno module
            return "connection closed by broker (broken pipe)"
        if c in (errno.ETIMEDOUT, errno.EHOSTUNREACH):
            return "broker unreachable"
        if len(e.args) > 1 and isinstance(e.args[1], str):
            return "TLS: %s" % e.args[1]  # mbedTLS: (-9984, 'MBEDTLS_ERR_X509_...')
        if isinstance(c, int) and c < 0:
            return "TLS error -0x%04x" % -c if c <= -0x1000 else "socket error no network?"
        return "socket error %s" % errno.errorcode.get(c, c)
    return "%s: %s" % (type(e).__name__, e)


def _tls_context(ca):
    """Client context: verified against the CA file when there is one, else unverified."""
    import ssl  # only mqtts:// needs it

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # verify_mode is in every port's ssl module (extmod), not in the ESP32 stubs
    ctx.verify_mode = ssl.CERT_NONE  # type: ignore[attr-defined]
    if not ca:
        return ctx
    try:
        with open(ca, "rb") as f:
            data = f.read()
    except OSError:
        raise uplink.UplinkError("mqtt.ca: cannot read %s" % ca)
    # mbedTLS wants DER here (PEM needs a trailing NUL): accept either, several PEM certs too
    certs = [data]
    if b"-----BEGIN" in data:
        import binascii

        certs = [binascii.a2b_base64(c.split(b"-----END", 1)[0].replace(b"\r", b"")
                                     .replace(b"\n", b""))
                 for c in data.split(b"-----BEGIN CERTIFICATE-----")[1:]]
        if not certs:
            raise uplink.UplinkError("mqtt.ca: no certificate in %s" % ca)
    try:
        for der in certs:
            ctx.load_verify_locations(cadata=der)
    except ValueError as e:
        raise uplink.UplinkError("mqtt.ca: %s" % e)
    ctx.verify_mode = ssl.CERT_REQUIRED  # type: ignore[attr-defined]
    return ctx
