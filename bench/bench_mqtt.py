"""MQTT figures (issue 4): QoS 1 publish -> PUBACK latency and QoS 0 rate, each beside stock
umqtt.simple 1.3.4 in the same run on the same broker; reconnect after a broker restart;
longest loop stall while the broker is down."""

import json
import os
import subprocess
import time

import rabbit
from conftest import MICROPYTHON
from mqtt_helpers import silent_broker

LAB = {"ssid": "lab", "password": "labpassword", "rssi": -50, "channel": 6, "security": "wpa2"}

# Same .mpy files as the board (bench.app_dir), run bare under the Unix port.
OURS = """
import asyncio, time, json
from perch.uplink import Uplink
N1, N0 = %d, %d
async def main():
    up = Uplink(%r, "perch-bench1", timeout_ms=5000)
    asyncio.create_task(up.run())
    await asyncio.wait_for_ms(up.wait_connected(), 15000)
    for i in range(20):
        await up.publish("bench/q1", b"warm", False, 1)
    lat = []
    for i in range(N1):
        t = time.ticks_us()
        await up.publish("bench/q1", b"m v=%%di" %% i, False, 1)
        lat.append(time.ticks_diff(time.ticks_us(), t))
    t = time.ticks_us()
    for i in range(N0):
        await up.publish("bench/q0", b"m v=%%di" %% i, False, 0)
    dt = time.ticks_diff(time.ticks_us(), t)
    print(json.dumps({"lat_us": lat, "q0_per_s": N0 * 1000000 / dt}))
asyncio.run(main())
"""

STOCK = """
import time, json
from umqtt.simple import MQTTClient
N1, N0 = %d, %d
c = MQTTClient("perch-bench2", "127.0.0.1", %d, user=%r, password=%r)
c.connect()
for i in range(3):
    c.publish(b"bench/q1", b"warm", qos=1)
lat = []
for i in range(N1):
    t = time.ticks_us()
    c.publish(b"bench/q1", b"m v=%%di" %% i, qos=1)
    lat.append(time.ticks_diff(time.ticks_us(), t))
t = time.ticks_us()
for i in range(N0):
    c.publish(b"bench/q0", b"m v=%%di" %% i, qos=0)
dt = time.ticks_diff(time.ticks_us(), t)
c.disconnect()
print(json.dumps({"lat_us": lat, "q0_per_s": N0 * 1000000 / dt}))
"""


def _mpy(bench, code, timeout=120):
    env = dict(os.environ, MICROPYPATH="%s:.frozen" % bench.app_dir)
    r = subprocess.run([MICROPYTHON, "-X", "heapsize=512k", "-c", code], env=env,
                       cwd=bench.tmp, capture_output=True, text=True, timeout=timeout)
    if r.returncode:
        raise RuntimeError(r.stdout[-500:] + r.stderr[-1500:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def _pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def _status(b):
    return b.status()


def _wait(b, pred, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        st = b.status()
        if pred(st):
            return st
        time.sleep(0.05)
    raise TimeoutError("board: %s" % b.status().get("mqtt"))


def _mqtt_board(bench, url, env=None):
    e = {"PERCH_MQTT_URL": url, "PERCH_TELEMETRY_INTERVAL_S": "1",
         "PERCH_TELEMETRY_SENSORS": '["sim"]'}
    e.update(env or {})
    cfg = {"wifi": {"networks": [{"ssid": LAB["ssid"], "password": LAB["password"]}]}}
    return bench.board(env=e, config=cfg, networks=[LAB])


def rows(bench):
    out = []
    node = rabbit.Rabbit()  # its own folder: the rabbitmq user cannot enter bench.tmp
    node.start()
    try:
        node.add_user("bench", "benchpw")
        url = node.url("bench", "benchpw")
        ours = _mqtt(bench, OURS % (300, 2000, url))
        stock = _mqtt(bench, STOCK % (60, 2000, node.mqtt_port, "bench", "benchpw"))
        om, sm = _pct(ours["lat_us"], 0.5) / 1000, _pct(stock["lat_us"], 0.5) / 1000
        op, sp = _pct(ours["lat_us"], 0.99) / 1000, _pct(stock["lat_us"], 0.99) / 1000
        out.append(("MQTT QoS 1 publish -> PUBACK, median", om, "ms", "<= 2 ms",
                    "stock umqtt.simple %.1f ms" % sm))
        out.append(("MQTT QoS 1 publish -> PUBACK, p99", op, "ms", "-",
                    "stock umqtt.simple %.1f ms" % sp))
        out.append(("MQTT QoS 0 publishes per second", round(ours["q0_per_s"]), "/s", "-",
                    "stock umqtt.simple %d/s" % stock["q0_per_s"]))

        b = _mqtt_board(bench, url, {"PERCH_MQTT_BACKOFF_MAX_S": "60"})
        _wait(b, lambda s: s["mqtt"]["state"] == "connected", 30)
        connects = b.status()["mqtt"]["connects"]
        node.stop()
        _wait(b, lambda s: s["mqtt"]["state"] != "connected", 30)
        node.start()
        t_up = time.monotonic()  # MQTT answers from here on
        _wait(b, lambda s: s["mqtt"]["connects"] > connects, 120)
        out.append(("MQTT reconnect after a broker restart", time.monotonic() - t_up, "s", "-",
                    "from broker answering again; backoff 1 s doubling, +jitter"))

        node.stop()
        _wait(b, lambda s: s["mqtt"]["state"] != "connected", 30)
        time.sleep(3)  # let the Erlang VM finish exiting: it competes for the 2 cores
        down = _stall_over(b, 15)
        silent = _silent_broker_stall(bench)
        out.append(("longest loop stall, broker down (refused)", down, "ms", "< 50 ms",
                    "15 s of reconnect attempts"))
        out.append(("longest loop stall, broker accepts TCP, never answers", silent, "ms",
                    "< 50 ms", "15 s of CONNACK timeouts"))
    finally:
        node.cleanup()
    return out


def _stall_over(b, seconds):
    """Longest loop stall of the board during the next `seconds` (GET /api/loop windows)."""
    b.get("/api/loop")
    worst = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(1)
        worst = max(worst, b.get("/api/loop").json()["max_stall_ms"])
    return worst


def _mqtt(bench, code):
    return _mpy(bench, code)


def _silent_broker_stall(bench):
    with silent_broker() as (port, _):
        b = _mqtt_board(bench, "mqtt://127.0.0.1:%d" % port,
                        {"PERCH_MQTT_TIMEOUT_S": "2", "PERCH_MQTT_BACKOFF_MAX_S": "2"})
        _wait(b, lambda s: s["mqtt"]["attempts"] >= 2, 30)
        return _stall_over(b, 15)
