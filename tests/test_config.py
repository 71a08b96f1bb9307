"""perch.config under the Unix port: defaults, round trip, validation, env, atomic write."""

import json
import os
import random
import signal
import subprocess
import time

import pytest

from conftest import MICROPYTHON, REPO, deps

PRELUDE = "import json\nfrom perch.config import Config, ConfigError\n"


def test_defaults_match_the_spec(mpy):
    r = mpy(PRELUDE + "c = Config()\nprint(json.dumps(c.public()))")
    doc = r.json()
    # The keys of SPEC §2; features may add more beside them.
    assert doc["wifi"]["networks"] == [] and doc["wifi"]["fallback_s"] == 120
    assert doc["http"]["port"] == 80
    assert doc["mqtt"]["url"] is None
    assert (doc["mqtt"]["qos"], doc["mqtt"]["buffer"]) == (1, 500)
    assert doc["telemetry"]["interval_s"] == 10
    ota = {k: doc["ota"][k] for k in ("server", "keys", "allow_unsigned", "min_version",
                                      "confirm_s")}
    assert ota == {"server": None, "keys": [], "allow_unsigned": False,
                   "min_version": "0.0.0", "confirm_s": 120}
    assert doc["log"]["level"] == "INFO"
    assert doc["admin"]["password"] == {"set": False}
    assert doc["ap"]["password"] == {"set": False}


def test_round_trip_is_nested_json(mpy, tmp_path):
    code = PRELUDE + (
        "c = Config()\n"
        "c.update({'name': 'Kitchen', 'mqtt': {'qos': 0}, 'telemetry.interval_s': 30,\n"
        "  'wifi': {'networks': [{'ssid': 'Café ☕', 'password': 'pässwörd1', 'priority': 2}]}})\n"
        "d = Config()\n"
        "print(json.dumps([d['name'], d['mqtt.qos'], d['telemetry.interval_s'],\n"
        "  d['wifi.networks']]))")
    r = mpy(code)
    assert r.json() == ["Kitchen", 0, 30, [{"ssid": "Café ☕", "password": "pässwörd1",
                                           "hidden": False, "priority": 2}]]
    stored = json.loads((tmp_path / "config.json").read_text())
    assert stored["mqtt"] == {"qos": 0}
    assert not (tmp_path / "config.json.tmp").exists()


@pytest.mark.parametrize("change, field", [
    ({"mqtt": {"qos": 2}}, "mqtt.qos"),
    ({"mqtt.buffer": "many"}, "mqtt.buffer"),
    ({"http": {"port": 0}}, "http.port"),
    ({"ota": {"allow_unsigned": "yes"}}, "ota.allow_unsigned"),
    ({"ota": {"min_version": "1.2"}}, "ota.min_version"),
    ({"log": {"level": "LOUD"}}, "log.level"),
    ({"mqtt": {"url": "ftp://x"}}, "mqtt.url"),
    ({"ap": {"password": "short"}}, "ap.password"),
    ({"wifi": {"networks": [{"ssid": ""}]}}, "wifi.networks.ssid"),
    ({"wifi": {"networks": [{"ssid": "a", "password": "1234"}]}}, "wifi.networks.password"),
    ({"wifi": {"networks": [{"ssid": "a"}, {"ssid": "a"}]}}, "wifi.networks"),
    ({"bogus": 1}, "bogus"),
])
def test_bad_values_are_rejected_naming_the_field(mpy, tmp_path, change, field):
    code = PRELUDE + (
        "c = Config()\nc.update({'name': 'before'})\n"
        "try:\n    c.update(json.loads(%r))\n    print(json.dumps(['accepted']))\n"
        "except ConfigError as e:\n    print(json.dumps([e.field, str(e), Config()['name']]))"
        % json.dumps(dict(change, name="after")))
    got = mpy(code).json()
    assert got[0] == field, got
    assert field in got[1]
    # All or nothing: the valid part of the same update is not applied either.
    assert got[2] == "before"


def test_env_overrides_win_and_are_not_saved(mpy, tmp_path):
    code = PRELUDE + (
        "c = Config()\nc.update({'name': 'n'})\n"
        "print(json.dumps([c['mqtt.url'], c['http.port'], c['ota.allow_unsigned'], c.errors]))")
    env = {"PERCH_MQTT_URL": "mqtt://u:secret@127.0.0.1:1883", "PERCH_HTTP_PORT": "8081",
           "PERCH_OTA_ALLOW_UNSIGNED": "1", "PERCH_MQTT_QOS": "7"}
    url, port, unsigned, errors = mpy(code, env=env).json()
    assert (url, port, unsigned) == ("mqtt://u:secret@127.0.0.1:1883", 8081, True)
    assert errors and "PERCH_MQTT_QOS" in errors[0]
    assert json.loads((tmp_path / "config.json").read_text()) == {"name": "n"}


def test_secrets_never_shown(mpy):
    code = PRELUDE + (
        "c = Config()\n"
        "c.update({'mqtt.url': 'mqtts://vhost:user:hunter22@broker:8883',\n"
        "  'admin.password': 'sha256$1000$salt$abcd', 'ap.password': 'appassword1',\n"
        "  'wifi.networks': [{'ssid': 'home', 'password': 'wifipassword1'}]})\n"
        "print(json.dumps(c.public()))")
    r = mpy(code)
    text = r.lines()[-1]
    for secret in ("hunter22", "abcd", "appassword1", "wifipassword1"):
        assert secret not in text
    doc = json.loads(text)
    assert doc["mqtt"]["url"] == "mqtts://vhost:user:***@broker:8883"
    assert doc["admin"]["password"] == {"set": True}
    assert doc["wifi"]["networks"] == [{"ssid": "home", "hidden": False, "priority": 0}]


def test_corrupt_file_boots_on_defaults_and_keeps_a_copy(mpy, tmp_path):
    (tmp_path / "config.json").write_text('{"name": "half')
    r = mpy(PRELUDE + "c = Config()\nprint(json.dumps([c['name'], c.errors]))")
    name, errors = r.json()
    assert name is None and "config.json" in errors[0]
    assert (tmp_path / "config.json.bad").read_text() == '{"name": "half'


def test_bad_field_in_file_is_reported_and_others_kept(mpy, tmp_path):
    (tmp_path / "config.json").write_text('{"name": "ok", "mqtt": {"qos": 9}}')
    r = mpy(PRELUDE + "c = Config()\nprint(json.dumps([c['name'], c['mqtt.qos'], c.errors]))")
    name, qos, errors = r.json()
    assert (name, qos) == ("ok", 1)
    assert errors == ["mqtt.qos: must be 0 to 1"]


WRITER = PRELUDE + """
c = Config()
i = 0
while True:
    i += 1
    c.update({'name': 'n%d' % i, 'telemetry.interval_s': 1 + i % 1000,
              'wifi.networks': [{'ssid': 'net%d' % i, 'password': 'x' * (8 + i % 50)}]})
"""


def test_atomic_write_survives_kill_9(tmp_path):
    deps.fetch()
    env = dict(os.environ, MICROPYPATH=":".join([str(REPO / "lib"), ".frozen"]))
    rng = random.Random(7)
    seen = set()
    for _ in range(25):
        p = subprocess.Popen([MICROPYTHON, "-c", WRITER], cwd=tmp_path, env=env)
        time.sleep(rng.uniform(0.05, 0.3))
        p.send_signal(signal.SIGKILL)
        p.wait()
        doc = json.loads((tmp_path / "config.json").read_text())
        n = int(doc["name"][1:])
        assert doc["telemetry"]["interval_s"] == 1 + n % 1000
        assert doc["wifi"]["networks"][0]["ssid"] == "net%d" % n
        seen.add(n)
    # Many different generations were cut, so the kills landed at different instants.
    assert len(seen) > 5
