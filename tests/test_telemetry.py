"""Telemetry end to end: virtual boards publishing to the private RabbitMQ node, read back
with paho-mqtt and a strict line-protocol parser (SPEC §5)."""

import json
import shutil
import threading
import time

import paho.mqtt.client as paho
import pytest
import requests

from lineparse import parse_line
from mqtt_helpers import Sub, mqtt_board, silent_broker, wait_status

SENSORS = ("sim", "mcu", {"driver": "bme280"}, {"driver": "dht22", "pin": 4},
           {"driver": "adc", "pin": 34})
TYPES = {
    "sim": {"seq": int, "value": float},
    "mcu": {"temperature": float},
    "environment": {"temperature": float, "humidity": float, "pressure": float},
    "adc": {"voltage": float, "raw": int},
    "device": {"heap_free": int, "uptime_s": int, "queued": int, "dropped": int, "rssi": int},
}


def lines(sub, topic):
    return [parse_line(p.decode()) for p in sub.payloads(topic)]


def sim_seqs(parsed):
    return [(f["seq"], ts) for m, t, f, ts in parsed if m == "sim"]


def test_readings_are_line_protocol_with_tags_types_timestamps(board, tmp_path, live_broker):
    b = mqtt_board(board, tmp_path, live_broker.url(live_broker.user, live_broker.password),
                   sensors=SENSORS)
    did = b.status()["device_id"]
    sub = Sub(live_broker, ["sensors/#"])
    try:
        t0 = time.time()
        sub.wait(lambda m: sum(1 for x in m if x[1].startswith(b"device,")) >= 3
                 and any(b"rssi=" in x[1] for x in m), timeout=40,
                 what="three sampling rounds, one with the station up")
        parsed = lines(sub, "sensors/" + did)
        seen = {}
        for m, tags, fields, ts in parsed:
            assert tags["device"] == did
            if m != "device":
                assert tags["sensor"] in ("sim", "mcu", "bme280", "dht22", "adc")
            for k, v in fields.items():
                assert type(v) is TYPES[m][k], (m, k, v)  # fixed types, ints with i
            assert ts is not None and abs(ts / 1e9 - t0) < 120  # ns Unix time
            seen.setdefault(tags.get("sensor", m), []).append((fields, ts))
        assert set(seen) == {"sim", "mcu", "bme280", "dht22", "adc", "device"}
        bme = seen["bme280"][0][0]
        # the driver's integer compensation reads back the world's values
        assert abs(bme["temperature"] - 22.5) < 0.02
        assert abs(bme["humidity"] - 41.0) < 0.1
        assert abs(bme["pressure"] - 1002.5) < 0.05
        dht = seen["dht22"][0][0]
        assert dht == {"temperature": 22.5, "humidity": 41.0}
        assert seen["mcu"][0][0]["temperature"] == pytest.approx(45.0, abs=0.6)
        dev = [f for f, _ in seen["device"] if "rssi" in f][-1]
        assert set(dev) == {"rssi", "heap_free", "uptime_s", "queued", "dropped"}
        assert dev["rssi"] == -48
        # readings of one sensor are stamped when sampled: strictly increasing
        ts = [t for _, t in seen["sim"]]
        assert ts == sorted(ts) and len(set(ts)) == len(ts)
        st = b.status()["mqtt"]
        assert st["state"] == "connected" and st["broker"].endswith(str(live_broker.mqtt_port))
        assert "perchpw" not in json.dumps(b.status())
    finally:
        sub.close()


def test_read_error_is_logged_and_skipped(board, tmp_path, live_broker):
    b = mqtt_board(board, tmp_path, live_broker.url(live_broker.user, live_broker.password),
                   sensors=("sim", {"driver": "dht22", "pin": 4}, {"driver": "nosuch"}),
                   start=False, PERCH_LOG_FORWARD="1")
    world = json.loads(b.world.read_text())
    world["sensors"]["fail"] = ["dht22"]  # a loose wire: the DHT22 never answers
    b.world.write_text(json.dumps(world))
    b.start()
    did = b.status()["device_id"]
    logs = Sub(live_broker, ["devices/%s/log" % did])
    try:
        st = wait_status(b, lambda s: s["mqtt"]["sent"] >= 6 and s["mqtt"]["sensor_errors"],
                         what="readings sent and a failed read")
        # WARNING lines are forwarded to devices/<id>/log (log.forward)
        logs.wait(lambda m: [x for x in m if b"sensor read failed" in x[1]],
                  what="forwarded warning")
    finally:
        logs.close()
    sims = [x for x in b.log().splitlines() if "reading" in x]
    assert st["mqtt"]["state"] == "connected" and not sims
    log = b.log()
    failed = [ln for ln in log.splitlines() if "sensor read failed" in ln]
    assert failed and "sensor=dht22" in failed[0] and "ETIMEDOUT" in failed[0]
    assert "unknown sensor driver 'nosuch'" in log


def test_birth_and_will(board, tmp_path, live_broker):
    b = mqtt_board(board, tmp_path, live_broker.url(live_broker.user, live_broker.password))
    did = b.status()["device_id"]
    topic = "devices/%s/status" % did
    wait_status(b, lambda s: s["mqtt"]["state"] == "connected", what="connected")
    # retained messages reach exact-topic subscribers only (RabbitMQ)
    sub = Sub(live_broker, [topic])
    try:
        sub.wait(lambda m: [x for x in m if x[1] == b"online"], what="birth")
        assert any(x[1] == b"online" and x[2] for x in sub.msgs)  # retained
        b.power_cut()
        sub.wait(lambda m: [x for x in m if x[1] == b"offline"], what="last will")
    finally:
        sub.close()
    late = Sub(live_broker, [topic])
    try:
        late.wait(lambda m: m, what="retained status")
        assert late.msgs[-1][1] == b"offline" and late.msgs[-1][2]
    finally:
        late.close()


class DurableSub(Sub):
    """A QoS 1 subscriber with a persistent session: the broker queues what arrives while
    this subscriber is itself cut off by the broker restart."""

    def __init__(self, broker, topics):
        self.msgs = []
        self.cv = threading.Condition()
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2,
                             client_id="durable-%d" % time.monotonic_ns(), clean_session=False)
        self.c.username_pw_set(broker.user, broker.password)
        self.c.on_message = self._on_msg
        self.subscribed = threading.Event()
        self.c.on_connect = lambda c, u, f, rc, p=None: c.subscribe([(t, 1) for t in topics])
        self.c.on_subscribe = lambda c, u, mid, rcs, p=None: self.subscribed.set()
        self.c.reconnect_delay_set(1, 2)
        self.c.connect("127.0.0.1", broker.mqtt_port, keepalive=10)
        self.c.loop_start()
        assert self.subscribed.wait(15), "subscription not acknowledged"


def test_zero_loss_over_30s_broker_outage(board, tmp_path, live_broker):
    br = live_broker
    b = mqtt_board(board, tmp_path, br.url(br.user, br.password))
    did = b.status()["device_id"]
    topic = "sensors/" + did
    sub = DurableSub(br, [topic])
    try:
        sub.wait(lambda m: len(sim_seqs(lines(sub, topic))) >= 3, what="readings before")
        stop_at = time.time()
        br.stop()
        time.sleep(30)
        st = b.status()["mqtt"]
        assert st["state"] != "connected" and st["queued"] >= 25  # it kept sampling
        restart_at = time.time()
        br.start()
        last = b.status()["mqtt"]["samples"]
        sub.wait(lambda m: max(s for s, _ in sim_seqs(lines(sub, topic))) >= last + 2,
                 timeout=60, what="replay after restart")
        got = sim_seqs(lines(sub, topic))
        first_seen = {}
        for seq, ts in got:
            first_seen.setdefault(seq, ts)
            assert first_seen[seq] == ts  # a duplicate is the same reading, same stamp
        seqs = sorted(first_seen)
        assert seqs == list(range(seqs[0], seqs[-1] + 1)), "a reading was lost"
        order = []
        for seq, _ in got:
            if seq not in order:
                order.append(seq)
        assert order == seqs  # first arrivals in sampling order
        during = [s for s in seqs if stop_at + 2 < first_seen[s] / 1e9 < restart_at - 1]
        assert len(during) >= 25  # sampled in the outage, kept their original stamps
        stamps = [first_seen[s] for s in seqs]
        gaps = [(b2 - a) / 1e9 for a, b2 in zip(stamps, stamps[1:])]
        assert all(0.5 < g < 3.0 for g in gaps), gaps
        st = wait_status(b, lambda s: s["mqtt"]["queued"] == 0, what="buffer drained")
        assert st["mqtt"]["dropped"] == 0
    finally:
        sub.close()


def test_overflow_drops_exactly_the_oldest(board, tmp_path, live_broker):
    br = live_broker
    b = mqtt_board(board, tmp_path, br.url(br.user, br.password), PERCH_MQTT_BUFFER=6)
    did = b.status()["device_id"]
    topic = "sensors/" + did
    sub = DurableSub(br, [topic])
    try:
        # a quiet start: connected, nothing queued (a 6-line buffer may already have
        # dropped a little before the station came up; that is not this outage's count)
        st = wait_status(b, lambda s: s["mqtt"]["state"] == "connected"
                         and s["mqtt"]["queued"] == 0, what="connected and drained")
        sub.wait(lambda m: len(sim_seqs(lines(sub, topic))) >= 2, what="readings before")
        d0 = st["mqtt"]["dropped"]
        before = max(s for s, _ in sim_seqs(lines(sub, topic)))
        br.stop()
        time.sleep(10)
        br.start()
        wait_status(b, lambda s: s["mqtt"]["state"] == "connected"
                    and s["mqtt"]["queued"] == 0 and s["mqtt"]["dropped"] > d0,
                    timeout=40, what="reconnected and drained")
        time.sleep(1.5)
        m = b.status()["mqtt"]
        # every line made (one sim + one device line per round) is sent, queued or dropped
        assert m["sent"] + m["queued"] + m["dropped"] == 2 * m["samples"]
        sub.wait(lambda _: len(set(sub.payloads(topic))) >= m["sent"] - 2, what="all sent")
        seqs = sorted({s for s, _ in sim_seqs(lines(sub, topic)) if s > before})
        missing = sorted(set(range(before + 1, seqs[-1] + 1)) - set(seqs))
        # what is missing is one run of the oldest readings of the outage
        assert missing and missing == list(range(missing[0], missing[-1] + 1))
        # dropped lines are these sim readings and the device lines between them; one more
        # when the broker took a publish as it went down but its PUBACK never came back
        assert 2 * len(missing) - 1 <= m["dropped"] - d0 <= 2 * len(missing) + 2
        # after the gap, the newest lines of the outage came through
        assert seqs[-1] > missing[-1]
    finally:
        sub.close()


def test_bad_credentials_readable_error_and_backoff(board, tmp_path, live_broker):
    b = mqtt_board(board, tmp_path, live_broker.url(live_broker.user, "not-the-password"))
    st = wait_status(b, lambda s: s["mqtt"]["last_error"], what="an error")
    time.sleep(8)
    st = b.status()["mqtt"]
    assert "CONNACK 4" in st["last_error"] or "CONNACK 5" in st["last_error"]
    assert "password" in st["last_error"] or "authorised" in st["last_error"]
    assert st["state"] != "connected"
    assert st["attempts"] <= 8  # backoff: a tight loop would be in the hundreds
    assert st["queued"] > 0  # readings are kept meanwhile
    assert "not-the-password" not in b.log()


def test_broker_that_never_answers_does_not_freeze_the_web(board, tmp_path):
    with silent_broker() as (port, held):
        b = mqtt_board(board, tmp_path, "mqtt://127.0.0.1:%d" % port)
        end = time.monotonic() + 10
        answered = 0
        while time.monotonic() < end:
            r = requests.get(b.url + "/api/status", timeout=3)
            assert r.status_code == 200
            answered += 1
        st = b.status()["mqtt"]
        assert st["last_error"] == "no CONNACK within 3000 ms"
        assert st["state"] != "connected"
        assert answered > 20 and held


def test_tls_to_rabbitmq_listener(board, tmp_path, live_broker):
    br = live_broker
    url = "mqtts://%s:%s@localhost:%d" % (br.user, br.password, br.tls_port)
    b = mqtt_board(board, tmp_path, url, PERCH_MQTT_CA="broker-ca.pem", start=False)
    shutil.copy(br.cert, b.root / "broker-ca.pem")
    b.start()
    did = b.status()["device_id"]
    sub = Sub(br, ["sensors/" + did])
    try:
        sub.wait(lambda m: len(m) >= 2, timeout=40, what="readings over TLS")
        st = b.status()["mqtt"]
        assert st["state"] == "connected" and st["broker"].startswith("mqtts://")
    finally:
        sub.close()


def test_tls_with_untrusted_certificate_is_refused(board, tmp_path, live_broker):
    br = live_broker
    other = tmp_path / "other-ca.pem"
    from conftest import self_signed_cert

    cert, _ = self_signed_cert(tmp_path)
    shutil.copy(cert, other)
    url = "mqtts://%s:%s@localhost:%d" % (br.user, br.password, br.tls_port)
    b = mqtt_board(board, tmp_path, url, PERCH_MQTT_CA="other-ca.pem", start=False)
    shutil.copy(other, b.root / "other-ca.pem")
    b.start()
    st = wait_status(b, lambda s: "TLS" in (s["mqtt"]["last_error"] or ""), what="TLS error")
    assert "CERT_VERIFY_FAILED" in st["mqtt"]["last_error"]
    assert st["mqtt"]["state"] != "connected" and st["mqtt"]["connects"] == 0


def test_commands_valid_unknown_malformed(board, tmp_path, live_broker):
    br = live_broker
    b = mqtt_board(board, tmp_path, br.url(br.user, br.password))
    did = b.status()["device_id"]
    wait_status(b, lambda s: s["mqtt"]["state"] == "connected", what="connected")
    res_topic = "devices/%s/cmd/result" % did
    sub = Sub(br, [res_topic])
    pub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="test-cmd-pub")
    pub.username_pw_set(br.user, br.password)
    pub.connect("127.0.0.1", br.mqtt_port)
    pub.loop_start()

    def send(payload, n):
        pub.publish("devices/%s/cmd" % did, payload, qos=1).wait_for_publish(5)
        sub.wait(lambda m: len(m) >= n, what="result %d" % n)
        return json.loads(sub.msgs[n - 1][1])

    try:
        r = send(json.dumps({"cmd": "set", "sample_interval_s": 7, "id": 42}), 1)
        assert r == {"cmd": "set", "id": 42, "ok": True, "sample_interval_s": 7}
        assert b.status()["mqtt"]["interval_s"] == 7  # in effect now
        saved = json.loads((b.root / "config.json").read_text())
        assert saved["telemetry"]["interval_s"] == 7  # and kept across reboots
        r = send(json.dumps({"cmd": "set", "sample_interval_s": 0}), 2)
        assert r["ok"] is False and "sample_interval_s" in r["error"]
        r = send(json.dumps({"cmd": "selfdestruct"}), 3)
        assert r["ok"] is False and "unknown command 'selfdestruct'" in r["error"]
        assert "reboot" in r["error"] and "set" in r["error"]  # lists the known ones
        r = send(b"{not json", 4)
        assert r["ok"] is False and r["error"].startswith("malformed JSON")
        r = send(b"[1, 2]", 5)
        assert r["ok"] is False and "cmd" in r["error"]
        assert b.status()["mqtt"]["state"] == "connected"  # the board kept running
        time.sleep(2)
        up0 = b.status()["uptime_s"]
        r = send(json.dumps({"cmd": "reboot"}), 6)
        assert r["ok"] is True and r["rebooting"] is True
        wait_status(b, lambda s: s["uptime_s"] < up0, what="a fresh boot")
    finally:
        pub.loop_stop()
        pub.disconnect()
        sub.close()


def test_no_broker_then_broker_set_at_runtime(board, tmp_path, live_broker):
    br = live_broker
    b = mqtt_board(board, tmp_path, "")
    st = wait_status(b, lambda s: s["mqtt"]["queued"] >= 2, what="readings kept")
    assert st["mqtt"]["state"] == "disabled" and st["mqtt"]["broker"] is None
    assert "reading line=" in b.log()  # no broker: readings are logged
    r = b.patch("/api/config", json={"mqtt": {"url": br.url(br.user, br.password)}})
    assert r.status_code == 200, r.text
    st = wait_status(b, lambda s: s["mqtt"]["state"] == "connected"
                     and s["mqtt"]["queued"] == 0, what="connected without a reboot")
    assert st["mqtt"]["sent"] >= 2  # what was kept went out
    r = b.patch("/api/config", json={"mqtt": {"url": "mqtt://127.0.0.1:1"}})
    st = wait_status(b, lambda s: s["mqtt"]["last_error"] == "connection refused",
                     what="switched to the new broker")
    assert st["mqtt"]["state"] != "connected"


def test_buffer_filled_without_broker_costs_no_heap_then_replays_in_order(board, tmp_path,
                                                                         live_broker):
    # SPEC §5: no broker, readings are kept in the buffer (a ring allocated at boot, so
    # filling it allocates nothing that stays); set a broker and every one arrives, in order
    br = live_broker
    b = mqtt_board(board, tmp_path, "", PERCH_MQTT_BUFFER=60)
    did = b.status()["device_id"]

    def live():
        return min(b.get("/api/status?gc=1").json()["mem"]["alloc"] for _ in range(3))

    wait_status(b, lambda s: s["mqtt"]["queued"] >= 4, what="first readings kept")
    early = live()
    st = wait_status(b, lambda s: s["mqtt"]["queued"] >= 44, timeout=40, what="buffer filling")
    full = live()
    assert full - early <= 2048, (early, full)
    assert st["mqtt"]["dropped"] == 0
    topic = "sensors/" + did
    sub = DurableSub(br, [topic])
    try:
        r = b.patch("/api/config", json={"mqtt": {"url": br.url(br.user, br.password)}})
        assert r.status_code == 200, r.text
        st = wait_status(b, lambda s: s["mqtt"]["state"] == "connected"
                         and s["mqtt"]["queued"] == 0, what="connected and drained")
        assert st["mqtt"]["dropped"] == 0
        sub.wait(lambda m: len(sim_seqs(lines(sub, topic))) >= 22, what="the kept readings")
        seqs = []
        for s, _ in sim_seqs(lines(sub, topic)):
            if s not in seqs:
                seqs.append(s)
        assert seqs == list(range(1, len(seqs) + 1))  # from the first, none lost, in order
        assert len(seqs) >= 22
    finally:
        sub.close()
