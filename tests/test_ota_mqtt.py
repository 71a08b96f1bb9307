"""Fleet OTA over MQTT: {"cmd":"ota","version":...} and {"cmd":"rollback"} on
devices/<id>/cmd, answered on devices/<id>/cmd/result, against the private RabbitMQ node."""

from __future__ import annotations

import json

import paho.mqtt.client as paho

from conftest import write_world
from mqtt_helpers import Sub
from ota_helpers import Release, wait_for, wait_version

LAB = {"ssid": "lab", "password": "otatest-pass", "rssi": -50, "channel": 6,
       "security": "WPA2", "hidden": False}


def test_ota_and_rollback_commands(board, broker, tmp_path):
    broker.start()
    rel = Release(tmp_path / "rel")
    rel.serve(["1.0.0", "1.1.0"])
    world = write_world(tmp_path / "world.json", [LAB])
    cfg = rel.config()
    cfg["wifi"] = {"networks": [{"ssid": "lab", "password": LAB["password"]}]}
    b = board(bundle=rel.www / "perch-1.0.0.bundle", config=cfg, world=world,
              env={"PERCH_OTA_CONFIRM_S": "20", "PERCH_MQTT_URL": broker.url(),
                   "PERCH_LOG_FORWARD": "true"})
    s = wait_for(lambda: (lambda s: s if s["mqtt"]["state"] == "connected" else None)(
        b.status()), 40, "MQTT connected", b)
    did = s["device_id"]
    sub = Sub(broker, ["devices/%s/cmd/result" % did])
    logs = Sub(broker, ["devices/%s/log" % did])
    pub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="test-ota-pub")
    pub.username_pw_set(broker.user, broker.password)
    pub.connect("127.0.0.1", broker.mqtt_port)
    pub.loop_start()

    def send(doc, n):
        pub.publish("devices/%s/cmd" % did, json.dumps(doc), qos=1).wait_for_publish(5)
        got = sub.wait(lambda m: len(m) >= n and m[n - 1], 30, "result %d" % n)
        assert got[0] == "devices/%s/cmd/result" % did
        return json.loads(got[1])

    try:
        r = send({"cmd": "ota", "version": "1.1.0", "id": 1}, 1)
        assert r["ok"] is True and r["id"] == 1 and r["version"] == "1.1.0", r
        s = wait_version(b, "1.1.0", timeout=60)
        assert s["previous_version"] == "1.0.0"
        # the result subscription survives the reboot; wait for MQTT before the next command
        wait_for(lambda: b.status()["mqtt"]["state"] == "connected", 40, "MQTT back", b)
        r = send({"cmd": "ota", "version": "9.9.9"}, 2)
        assert r["ok"] is False and "9.9.9 is not on the update server" in r["error"], r
        r = send({"cmd": "rollback"}, 3)
        assert r["ok"] is True and r["to"] == "1.0.0", r
        s = wait_version(b, "1.0.0", timeout=60)
        assert "rollback by MQTT command from 1.1.0" in s["ota"]["rollback_reason"]
        # the reason also goes out on the device's MQTT log topic once it is back
        logs.wait(lambda m: any(b"rolled back" in p and b"rollback by MQTT command" in p
                                for _, p, _, _ in m), 30, "rollback reason on the log topic")
    finally:
        pub.loop_stop()
        pub.disconnect()
        sub.close()
        logs.close()
