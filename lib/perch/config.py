# Config: defaults < config.json < PERCH_* environment, and the atomic file writer.
#
# In RAM the config is a flat dict keyed by dotted names ("mqtt.url"); on flash and in the
# API it is nested ({"mqtt": {"url": ...}}). Only reading a setting stays resident: the
# schema, validation, the nested <-> flat conversion and the public view live in
# perch.schema, loaded when the config is read from flash or changed, and dropped after.

import os
import sys

PATH = "config.json"

# SPEC §2 and the features' settings; perch.schema has the types and bounds of each key.
DEFAULTS = {
    "name": None,
    "wifi.networks": [],
    "wifi.fallback_s": 120,
    "wifi.timeout_s": 15,
    "ap.linger_s": 30,
    "ap.password": None,
    "http.port": 80,
    "dns.port": 53,
    "admin.password": None,
    "mqtt.url": None,
    "mqtt.qos": 1,
    "mqtt.buffer": 500,
    "telemetry.interval_s": 10,
    "telemetry.sensors": ["mcu"],
    "mqtt.ca": None,
    "mqtt.spool": 0,
    "mqtt.keepalive_s": 60,
    "mqtt.timeout_s": 10,
    "mqtt.backoff_max_s": 60,
    "log.forward": False,
    "ota.server": None,
    "ota.keys": [],
    "ota.allow_unsigned": False,
    "ota.min_version": "0.0.0",
    "ota.confirm_s": 120,
    "log.level": "INFO",
}


def drop(name):
    """Forget perch.<name>, loaded on use, so that its code is freed once nothing holds it
    (its interned names stay)."""
    sys.modules.pop("perch." + name, None)
    p = sys.modules["perch"]
    if hasattr(p, name):
        delattr(p, name)  # the import bound it on the package too


def lazy(name):
    """perch.<name> for one use: unless something keeps it loaded, it is dropped from
    sys.modules again, so that its code is freed once the caller lets go of it."""
    kept = "perch." + name in sys.modules
    m = __import__("perch." + name, None, None, (name,))
    if not kept:
        drop(name)
    return m


def __getattr__(name):
    # config.SCHEMA, config.flatten, config.check(key, v) (the validated value, or raise
    # ConfigError naming the key), ...: the editing side, on use
    return getattr(lazy("schema"), name)


class ConfigError(ValueError):
    def __init__(self, field, msg):
        super().__init__("%s: %s" % (field, msg))
        self.field = field
        self.msg = msg


class Config:
    """Effective settings; errors lists what was ignored at load."""

    # filled by schema.load(): config.json's settings, PERCH_* overrides, what was ignored
    stored: dict
    env: dict
    errors: list

    def __init__(self, path=PATH):
        self.path = path
        lazy("schema").load(self)

    def __getitem__(self, key):
        if key in self.env:
            return self.env[key]
        if key in self.stored:
            return self.stored[key]
        return DEFAULTS[key]

    def __getattr__(self, name):
        # update(changes, save=True), public(), reset(): perch.schema's, loaded per call (one
        # kept, as auth keeps update, must not pin the schema's code)
        return lambda *a: getattr(lazy("schema"), name)(self, *a)


def write_atomic(path, data):
    """Write data to path so that a power cut leaves either the old or the new file."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(data)
    # rename() replaces the target in one step on LittleFS and POSIX.
    os.rename(tmp, path)
