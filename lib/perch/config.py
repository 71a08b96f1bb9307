# Config: schema with defaults, validation, atomic write, PERCH_* overrides, redaction.
#
# In RAM the config is a flat dict keyed by dotted names ("mqtt.url"); on flash and in the
# API it is nested ({"mqtt": {"url": ...}}), which is what people expect to read and write.

import json
import os

from micropython import const

PATH = "config.json"
_TMP = "config.json.tmp"

_STR = const(0)
_INT = const(1)
_BOOL = const(2)
_SECRET = const(3)
_NETS = const(4)
_LIST = const(5)
_VER = const(6)
_LEVEL = const(7)
_URL = const(8)

# key: (type, default, min, max). Lengths bound strings, values bound ints.
SCHEMA: dict = {
    "name": (_STR, None, 1, 32),
    "wifi.networks": (_NETS, [], 0, 8),
    "wifi.fallback_s": (_INT, 120, 10, 86400),
    "wifi.timeout_s": (_INT, 15, 2, 120),
    "ap.linger_s": (_INT, 30, 0, 3600),
    "ap.password": (_SECRET, None, 8, 63),
    "http.port": (_INT, 80, 1, 65535),
    "dns.port": (_INT, 53, 1, 65535),
    "admin.password": (_SECRET, None, 1, 128),
    "mqtt.url": (_URL, None, 8, 256),
    "mqtt.qos": (_INT, 1, 0, 1),
    "mqtt.buffer": (_INT, 500, 1, 20000),
    "telemetry.interval_s": (_INT, 10, 1, 86400),
    "ota.server": (_URL, None, 8, 256),
    "ota.keys": (_LIST, [], 0, 4),
    "ota.allow_unsigned": (_BOOL, False, 0, 0),
    "ota.min_version": (_VER, "0.0.0", 5, 32),
    "ota.confirm_s": (_INT, 120, 5, 3600),
    "log.level": (_LEVEL, "INFO", 0, 0),
}

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class ConfigError(ValueError):
    def __init__(self, field, msg):
        super().__init__("%s: %s" % (field, msg))
        self.field = field
        self.msg = msg


def _need(ok, key, msg):
    if not ok:
        raise ConfigError(key, msg)


def _check_str(key, v, lo, hi):
    _need(isinstance(v, str), key, "must be a string")
    _need(lo <= len(v.encode()) <= hi, key, "length must be %d to %d bytes" % (lo, hi))
    return v


def _check_net(key, n):
    _need(isinstance(n, dict), key, "each network must be an object")
    for k in n:
        _need(k in ("ssid", "password", "hidden", "priority"), key, "unknown field " + k)
    ssid = _check_str(key + ".ssid", n.get("ssid"), 1, 32)
    pw = n.get("password") or ""
    _check_str(key + ".password", pw, 0, 64)
    _need(pw == "" or len(pw.encode()) >= 8, key + ".password", "WPA2 needs 8 to 64 bytes")
    hidden = n.get("hidden", False)
    _need(isinstance(hidden, bool), key + ".hidden", "must be true or false")
    prio = n.get("priority", 0)
    _need(isinstance(prio, int) and -100 <= prio <= 100, key + ".priority", "must be -100..100")
    return {"ssid": ssid, "password": pw, "hidden": hidden, "priority": prio}


def parse_version(v):
    # Semantic version as a tuple, so that "1.10.0" > "1.9.0" compares as numbers.
    core = v.split("-", 1)[0].split("+", 1)[0]
    parts = core.split(".")
    if len(parts) != 3:
        raise ValueError("not a version: " + v)
    return tuple(int(p) for p in parts)


def check(key, v):
    """Return the validated value for key, or raise ConfigError naming the key."""
    if key not in SCHEMA:
        raise ConfigError(key, "unknown setting")
    t, _, lo, hi = SCHEMA[key]
    if v is None:
        _need(t in (_STR, _SECRET, _URL), key, "cannot be null")
        return None
    if t == _INT:
        _need(isinstance(v, int) and not isinstance(v, bool), key, "must be an integer")
        _need(lo <= v <= hi, key, "must be %d to %d" % (lo, hi))
    elif t == _BOOL:
        _need(isinstance(v, bool), key, "must be true or false")
    elif t in (_STR, _SECRET):
        _check_str(key, v, lo, hi)
    elif t == _URL:
        _check_str(key, v, lo, hi)
        scheme = v.split("://", 1)[0]
        _need("://" in v and scheme in ("mqtt", "mqtts", "http", "https"), key, "bad URL")
    elif t == _VER:
        _check_str(key, v, lo, hi)
        try:
            parse_version(v)
        except ValueError:
            raise ConfigError(key, "must be a version like 1.2.3")
    elif t == _LEVEL:
        _need(v in LEVELS, key, "must be one of " + ", ".join(LEVELS))
    elif t == _LIST:
        _need(isinstance(v, list) and len(v) <= hi, key, "must be a list of at most %d" % hi)
    elif t == _NETS:
        _need(isinstance(v, list) and len(v) <= hi, key, "must be a list of at most %d" % hi)
        v = [_check_net(key, n) for n in v]
        ssids = [n["ssid"] for n in v]
        _need(len(set(ssids)) == len(ssids), key, "duplicate ssid")
    return v


def flatten(tree, prefix="", out=None):
    """{"mqtt": {"url": u}} -> {"mqtt.url": u}; dotted keys pass through unchanged."""
    if out is None:
        out = {}
    for k, v in tree.items():
        key = prefix + k
        if isinstance(v, dict) and key not in SCHEMA:
            flatten(v, key + ".", out)
        else:
            out[key] = v
    return out


def nest(flat):
    out: dict = {}
    for key, v in flat.items():
        head, _, tail = key.rpartition(".")
        node = out
        if head:
            for part in head.split("."):
                node = node.setdefault(part, {})
        node[tail] = v
    return out


def _env_value(key, raw):
    t = SCHEMA[key][0]
    if t == _INT:
        return int(raw)
    if t == _BOOL:
        return raw.lower() in ("1", "true", "yes", "on")
    if t in (_NETS, _LIST):
        return json.loads(raw)
    return raw


class Config:
    """Effective settings: defaults < config.json < PERCH_* environment."""

    def __init__(self, path=PATH):
        self.path = path
        self.stored = {}
        self.env = {}
        self.errors = []
        self.load()

    def load(self):
        self.stored = {}
        self.errors = []
        try:
            with open(self.path) as f:
                tree = json.load(f)
            if not isinstance(tree, dict):
                raise ValueError("not an object")
        except OSError:
            tree = {}
        except ValueError as e:
            # Unreadable file: boot on defaults, and keep the bad copy for inspection.
            self.errors.append("config.json: %s" % e)
            try:
                os.rename(self.path, self.path + ".bad")
            except OSError:
                pass
            tree = {}
        for key, v in flatten(tree).items():
            try:
                self.stored[key] = check(key, v)
            except ConfigError as e:
                self.errors.append(str(e))
        self.env = {}
        getenv = getattr(os, "getenv", None)
        if getenv:
            for key in SCHEMA:
                raw = getenv("PERCH_" + key.replace(".", "_").upper())
                if raw is not None:
                    try:
                        self.env[key] = check(key, _env_value(key, raw))
                    except (ValueError, ConfigError) as e:
                        self.errors.append("PERCH_%s: %s" % (key.replace(".", "_").upper(), e))

    def __getitem__(self, key):
        if key in self.env:
            return self.env[key]
        if key in self.stored:
            return self.stored[key]
        return SCHEMA[key][1]

    def get(self, key, default=None):
        return self[key] if key in SCHEMA else default

    def update(self, changes, save=True):
        """Validate all of changes first, then apply them together, or raise ConfigError."""
        flat = flatten(changes)
        checked = {k: check(k, v) for k, v in flat.items()}
        for k, v in checked.items():
            if v is None:
                self.stored.pop(k, None)
            else:
                self.stored[k] = v
        if save:
            self.save()

    def save(self):
        write_atomic(self.path, json.dumps(nest(self.stored)))

    def reset(self):
        self.stored = {}
        try:
            os.remove(self.path)
        except OSError:
            pass

    def public(self):
        """Every setting, secrets replaced by whether they are set."""
        out = {}
        for key, spec in SCHEMA.items():
            v = self[key]
            if spec[0] == _SECRET:
                v = {"set": v is not None}
            elif key == "wifi.networks":
                v = [{"ssid": n["ssid"], "hidden": n["hidden"], "priority": n["priority"]}
                     for n in v]
            elif spec[0] == _URL and v:
                v = redact_url(v)
            out[key] = v
        return nest(out)


def redact_url(url):
    # scheme://user:password@host -> scheme://user:***@host
    scheme, _, rest = url.partition("://")
    cred, at, host = rest.rpartition("@")
    if not at or ":" not in cred:
        return url
    # The password follows the last colon: RabbitMQ users may be "vhost:user".
    return "%s://%s:***@%s" % (scheme, cred.rpartition(":")[0], host)


def write_atomic(path, data):
    """Write data to path so that a power cut leaves either the old or the new file."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(data)
    # rename() replaces the target in one step on LittleFS and POSIX.
    os.rename(tmp, path)
