# Config: defaults < config.json < PERCH_* environment, and the atomic file writer.
#
# In RAM the config is a flat dict keyed by dotted names ("mqtt.url"); on flash and in the
# API it is nested ({"mqtt": {"url": ...}}). Only reading a setting stays resident: the
# schema, validation, the nested <-> flat conversion and the public view live in
# perch.schema, loaded when the config is read from flash or changed, and dropped after.

import os
import sys

PATH = "config.json"

# SPEC §2 and the features' settings and their defaults; perch.schema has the types and
# bounds of each key. The names in one string and the values in one tuple, in the same
# order: as a dict they cost ~1.5 KB more (a heap object per dotted name, and the table).
_KEYS = (
    " name wifi.networks wifi.fallback_s wifi.timeout_s ap.linger_s ap.password http.port"
    " dns.port admin.password mqtt.url mqtt.qos mqtt.buffer telemetry.interval_s"
    " telemetry.sensors mqtt.ca mqtt.spool mqtt.keepalive_s mqtt.timeout_s"
    " mqtt.backoff_max_s log.forward ota.server ota.keys ota.allow_unsigned ota.min_version"
    " ota.confirm_s log.level "
)
_VALS: tuple = (
    None, [], 120, 15, 30, None, 80, 53, None, None, 1, 500, 10, ["mcu"], None, 0, 60, 10, 60,
    False, None, [], False, "0.0.0", 120, "INFO",
)


def default(key):
    """The default of setting key; KeyError for a name that is not a setting."""
    k = key + " "
    i = _KEYS.find(k)
    while i > 0 and _KEYS[i - 1] != " ":  # the end of a longer name
        i = _KEYS.find(k, i + 1)
    if i <= 0:  # not found, or key "" (the string's first space)
        raise KeyError(key)
    return _VALS[_KEYS.count(" ", 0, i) - 1]


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
        return default(key)

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
