# umqtt.simple 1.3.4, unmodified, as the packet encoder and PUBLISH parser of the uplink.
#
# umqtt.simple speaks to a blocking socket. Here it writes into and reads from an in-memory
# "wire" instead; perch.uplink moves the bytes over a non-blocking asyncio stream. Each
# packet comes off the wire whole, so it goes out in one write (no Nagle + delayed-ACK wait).

import ssl
import sys

# umqtt.simple imports ussl for TLS; the ESP32 and Unix ports only have ssl now.
if "ussl" not in sys.modules:
    sys.modules["ussl"] = ssl

import umqtt.simple as _simple  # noqa: E402
from umqtt.simple import MQTTClient  # noqa: E402


class Short(Exception):
    # umqtt asked for bytes the wire does not hold yet: the packet it was building is done
    pass


class _Wire:
    """Stands in for umqtt.simple's socket: collects what it writes, feeds what it reads."""

    def __init__(self):
        self.out = bytearray()
        self.rx = b""
        self.pos = 0

    def write(self, buf, n=-1):
        if isinstance(buf, str):
            buf = buf.encode()
        if n >= 0:
            buf = memoryview(buf)[:n]
        self.out.extend(buf)
        return len(buf)

    def read(self, n):
        p = self.pos
        if p + n > len(self.rx):
            raise Short()
        self.pos = p + n
        return self.rx[p:p + n]

    def feed(self, pkt):
        self.rx = pkt
        self.pos = 0

    def take(self):
        out = self.out
        self.out = bytearray()
        return out

    def setblocking(self, flag):
        pass

    def connect(self, addr):
        pass

    def close(self):
        pass


class _SockModule:
    # What umqtt.simple's connect() sees as its `socket` module while it builds CONNECT.
    def __init__(self, wire):
        self.wire = wire

    def socket(self, *args):
        return self.wire

    def getaddrinfo(self, host, port, *args):
        return ((0, 0, 0, "", (host, port)),)


class Client(MQTTClient):
    """umqtt.simple's packet encoders and PUBLISH parser, writing into a _Wire."""

    def __init__(self, client_id, user, password, keepalive):
        # umqtt counts len() of what it is given: hand it bytes, not str
        super().__init__(as_bytes(client_id), "wire", 1883, as_bytes(user),
                         as_bytes(password), keepalive)
        self.wire = _Wire()
        self.sock = self.wire
        self._mod = _SockModule(self.wire)

    def _next_pid(self):
        # umqtt counts up forever; MQTT ids are 1..65535 and 0 is invalid
        if self.pid >= 65535:
            self.pid = 0

    def connect_packet(self):
        w = self.wire
        w.take()
        w.feed(b"")
        # umqtt's connect() opens its own socket through its module global `socket`; for
        # this synchronous call that is the wire (no await in between, so no other task
        # can see the swap)
        g = _simple.__dict__
        saved = g["socket"]
        g["socket"] = self._mod
        try:
            MQTTClient.connect(self, True)
        except Short:
            pass  # it wrote CONNECT and now waits for CONNACK: that wait is ours
        finally:
            g["socket"] = saved
            self.sock = w
        return w.take()

    def publish_packet(self, topic, msg, retain, qos):
        w = self.wire
        w.feed(b"")
        self._next_pid()
        try:
            MQTTClient.publish(self, topic, msg, retain, qos)
        except Short:
            pass  # QoS 1: waiting for PUBACK, which the reader task sees
        return w.take(), self.pid

    def subscribe_packet(self, topic, qos):
        w = self.wire
        w.feed(b"")
        self._next_pid()
        try:
            MQTTClient.subscribe(self, topic, qos)
        except Short:
            pass
        return w.take()

    def incoming_publish(self, pkt):
        """Parse one whole PUBLISH with umqtt; returns the PUBACK to send (or empty)."""
        w = self.wire
        w.feed(pkt)
        w.take()
        self.wait_msg()
        return w.take()


def as_bytes(s):
    return s.encode() if isinstance(s, str) else s


def varlen(op, n):
    out = bytearray((op,))
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | 0x80 if n else b)
        if not n:
            return out
