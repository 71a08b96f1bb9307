# The editing side of the config: schema, validation, loading config.json and PERCH_*,
# writes, nested <-> flat, the public view. Loaded through config.lazy() when the config is
# read from flash or changed, and dropped after (see config.py).

import json
import os

from micropython import const

from perch.config import ConfigError, default, write_atomic

_STR = const(0)
_INT = const(1)
_BOOL = const(2)
_SECRET = const(3)
_NETS = const(4)
_LIST = const(5)
_VER = const(6)
_LEVEL = const(7)
_URL = const(8)

# key: (type, min, max). Lengths bound strings, values bound ints, counts bound lists.
_TYPES = {
    "name": (_STR, 1, 32),
    "wifi.networks": (_NETS, 0, 8),
    "wifi.fallback_s": (_INT, 10, 86400),
    "wifi.timeout_s": (_INT, 2, 120),
    "ap.linger_s": (_INT, 0, 3600),
    "ap.password": (_SECRET, 8, 63),
    "http.port": (_INT, 1, 65535),
    "dns.port": (_INT, 1, 65535),
    "admin.password": (_SECRET, 1, 128),
    "mqtt.url": (_URL, 8, 256),
    "mqtt.qos": (_INT, 0, 1),
    "mqtt.buffer": (_INT, 1, 20000),
    "telemetry.interval_s": (_INT, 1, 86400),
    # MQTT and telemetry details (issue 4): sensor list, TLS CA file, flash spool size in
    # readings (0 = RAM only), keepalive, per-step deadline, backoff cap, log forwarding
    "telemetry.sensors": (_LIST, 0, 8),
    "mqtt.ca": (_STR, 1, 64),
    "mqtt.spool": (_INT, 0, 100000),
    "mqtt.keepalive_s": (_INT, 0, 3600),
    "mqtt.timeout_s": (_INT, 1, 120),
    "mqtt.backoff_max_s": (_INT, 1, 3600),
    "log.forward": (_BOOL, 0, 0),
    "ota.server": (_URL, 8, 256),
    "ota.keys": (_LIST, 0, 4),
    "ota.allow_unsigned": (_BOOL, 0, 0),
    "ota.min_version": (_VER, 5, 32),
    "ota.confirm_s": (_INT, 5, 3600),
    "log.level": (_LEVEL, 0, 0),
}
# key: (type, default, min, max), the layout other modules index
SCHEMA = {k: (t[0], default(k), t[1], t[2]) for k, t in _TYPES.items()}

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


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


def check(key, v):
    """Return the validated value for key, or raise ConfigError naming the key."""
    _need(key in _TYPES, key, "unknown setting")
    t, lo, hi = _TYPES[key]
    if v is None:
        _need(t in (_STR, _SECRET, _URL), key, "cannot be null")
        return None
    if t == _INT:
        _need(isinstance(v, int) and not isinstance(v, bool), key, "must be an integer")
        _need(lo <= v <= hi, key, "must be %d to %d" % (lo, hi))
    elif t == _BOOL:
        _need(isinstance(v, bool), key, "must be true or false")
    elif t == _LEVEL:
        _need(v in LEVELS, key, "must be one of " + ", ".join(LEVELS))
    elif t == _LIST or t == _NETS:
        _need(isinstance(v, list) and len(v) <= hi, key, "must be a list of at most %d" % hi)
        if t == _NETS:
            v = [_check_net(key, n) for n in v]
            ssids = [n["ssid"] for n in v]
            _need(len(set(ssids)) == len(ssids), key, "duplicate ssid")
    else:
        _check_str(key, v, lo, hi)
        if t == _URL:
            scheme = v.split("://", 1)[0]
            _need("://" in v and scheme in ("mqtt", "mqtts", "http", "https"), key, "bad URL")
        elif t == _VER:
            # Semantic version: three numbers, then an optional -pre or +build part.
            core = v.split("-", 1)[0].split("+", 1)[0].split(".")
            try:
                ok = len(core) == 3 and [int(p) for p in core]
            except ValueError:
                ok = False
            _need(ok, key, "must be a version like 1.2.3")
    return v


def flatten(tree, prefix="", out=None):
    """{"mqtt": {"url": u}} -> {"mqtt.url": u}; dotted keys pass through unchanged."""
    if out is None:
        out = {}
    for k, v in tree.items():
        key = prefix + k
        if isinstance(v, dict) and key not in _TYPES:
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


def load(cfg):
    """Fill cfg.stored from config.json and cfg.env from PERCH_*; cfg.errors says what was
    ignored."""
    cfg.stored = stored = {}
    cfg.env = env = {}
    cfg.errors = errors = []
    try:
        with open(cfg.path) as f:
            tree = json.load(f)
        if not isinstance(tree, dict):
            raise ValueError("not an object")
    except OSError:
        tree = {}
    except ValueError as e:
        # Unreadable file: boot on defaults, and keep the bad copy for inspection.
        errors.append("config.json: %s" % e)
        try:
            os.rename(cfg.path, cfg.path + ".bad")
        except OSError:
            pass
        tree = {}
    for key, v in flatten(tree).items():
        try:
            stored[key] = check(key, v)
        except ConfigError as e:
            errors.append(str(e))
    getenv = getattr(os, "getenv", None)
    if getenv:
        for key, (t, _, _) in _TYPES.items():
            name = "PERCH_" + key.replace(".", "_").upper()
            raw = getenv(name)
            if raw is not None:
                try:
                    if t == _INT:
                        raw = int(raw)
                    elif t == _BOOL:
                        raw = raw.lower() in ("1", "true", "yes", "on")
                    elif t == _NETS or t == _LIST:
                        raw = json.loads(raw)
                    env[key] = check(key, raw)
                except (ValueError, ConfigError) as e:
                    errors.append("%s: %s" % (name, e))


# Config's update(changes, save=True), public() and reset(), through Config.__getattr__


def update(cfg, changes, save=True):
    """Validate all of changes first, then apply them together, or raise ConfigError."""
    checked = {k: check(k, v) for k, v in flatten(changes).items()}
    for k, v in checked.items():
        if v is None:
            cfg.stored.pop(k, None)
        else:
            cfg.stored[k] = v
    if save:
        write_atomic(cfg.path, json.dumps(nest(cfg.stored)))


def public(cfg):
    """Every setting, nested, secrets replaced by whether they are set."""
    out = {}
    for key, (t, _, _) in _TYPES.items():
        v = cfg[key]
        if t == _SECRET:
            v = {"set": v is not None}
        elif t == _NETS:
            v = [{"ssid": n["ssid"], "hidden": n["hidden"], "priority": n["priority"]}
                 for n in v]
        elif t == _URL and v:
            v = redact_url(v)
        out[key] = v
    return nest(out)


def reset(cfg):
    cfg.stored = {}
    try:
        os.remove(cfg.path)
    except OSError:
        pass


def redact_url(url):
    # scheme://user:password@host -> scheme://user:***@host
    scheme, _, rest = url.partition("://")
    cred, at, host = rest.rpartition("@")
    if not at or ":" not in cred:
        return url
    # The password follows the last colon: RabbitMQ users may be "vhost:user".
    return "%s://%s:***@%s" % (scheme, cred.rpartition(":")[0], host)
