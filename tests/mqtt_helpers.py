"""paho-mqtt subscriber and board setup shared by the MQTT tests."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time

import paho.mqtt.client as paho
import requests

from conftest import write_world

LAB = {"ssid": "lab", "password": "labpassword", "rssi": -48, "channel": 6,
       "security": "wpa2"}


class Sub:
    """Subscribes to topics on the broker and records (topic, payload, retain, time)."""

    def __init__(self, broker, topics, user=None, password=None):
        self.msgs: list[tuple[str, bytes, bool, float]] = []
        self.cv = threading.Condition()
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2,
                             client_id="test-sub-%d" % time.monotonic_ns())
        self.c.username_pw_set(user or broker.user, password or broker.password)
        self.c.on_message = self._on_msg
        self.subscribed = threading.Event()
        self.c.on_connect = lambda c, u, f, rc, p=None: c.subscribe([(t, 1) for t in topics])
        self.c.on_subscribe = lambda c, u, mid, rcs, p=None: self.subscribed.set()
        self.c.connect("127.0.0.1", broker.mqtt_port, keepalive=30)
        self.c.loop_start()
        # messages published before the SUBACK would reach nobody
        assert self.subscribed.wait(15), "subscription to %r not acknowledged" % (topics,)

    def _on_msg(self, c, u, m):
        with self.cv:
            self.msgs.append((m.topic, m.payload, bool(m.retain), time.time()))
            self.cv.notify_all()

    def wait(self, pred, timeout=30.0, what="messages"):
        """Wait until pred(msgs) is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        with self.cv:
            while True:
                v = pred(self.msgs)
                if v:
                    return v
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("timed out waiting for %s; got %d messages: %r"
                                         % (what, len(self.msgs), self.msgs[-5:]))
                self.cv.wait(min(left, 0.5))

    def payloads(self, topic):
        with self.cv:
            return [p for t, p, _, _ in self.msgs if t == topic]

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def mqtt_board(board, tmp_path, url, sensors=("sim",), interval=1, heap="512k", start=True,
               **env):
    """A virtual board on a known Wi-Fi network, publishing to url."""
    world = write_world(tmp_path / "mqtt-world.json", [LAB],
                        sensors={"temperature_c": 22.5, "humidity_pct": 41.0,
                                 "pressure_hpa": 1002.5})
    e = {"PERCH_MQTT_URL": url, "PERCH_TELEMETRY_INTERVAL_S": str(interval),
         "PERCH_TELEMETRY_SENSORS": json.dumps(list(sensors)),
         "PERCH_MQTT_BACKOFF_MAX_S": "4", "PERCH_MQTT_TIMEOUT_S": "3"}
    if not url:
        del e["PERCH_MQTT_URL"]  # no broker; an env override would also pin it
    e.update({k: str(v) for k, v in env.items()})
    cfg = {"wifi": {"networks": [{"ssid": LAB["ssid"], "password": LAB["password"]}]}}
    return board(world=world, env=e, config=cfg, heap=heap, start=start)


def wait_status(b, pred, timeout=30.0, what="status"):
    deadline = time.monotonic() + timeout
    st = None
    while time.monotonic() < deadline:
        try:
            st = b.status()
        except requests.ConnectionError:  # a board rebooting resets what it was answering
            time.sleep(0.2)
            continue
        if pred(st):
            return st
        time.sleep(0.2)
    raise AssertionError("timed out waiting for %s; last status mqtt=%r\n%s"
                         % (what, st and st.get("mqtt"), b.log()[-3000:]))


@contextlib.contextmanager
def silent_broker():
    """A TCP listener that accepts connections and never answers: yields its port."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    held = []
    stop = threading.Event()

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])  # accept, read nothing, answer nothing
            except OSError:
                pass

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield srv.getsockname()[1], held
    finally:
        stop.set()
        srv.close()
        for c in held:
            c.close()
