# The simulated radio environment: the JSON file named by PERCH_SIM_WORLD, shared by the
# virtual board's network, machine and sensor modules. Tests rewrite it while the board runs.
#
# {
#   "networks": [{"ssid": "home", "password": "pw", "rssi": -50, "channel": 6,
#                 "security": "wpa2",   # open|wep|wpa|wpa2|wpa/wpa2|wpa3|wpa2/wpa3 or an
#                                       # AUTH_* int; default wpa2 with a password, else open
#                 "hidden": false, "bssid": "aa:bb:cc:dd:ee:ff"}],   # bssid optional
#   "connect_ms": 800,     # how long WLAN.connect() stays CONNECTING
#   "scan_ms": 1200,       # how long WLAN.scan() blocks its caller
#   "sensors": {"adc": {"34": 2048},   # raw 12-bit ADC counts per GPIO (without _sensors.py)
#               "pins": {"4": 1}, ...}  # input levels per GPIO; the rest is _sensors.py's
# }
import json
import os
import time

# File mtimes have one-second resolution here: a file touched this recently may change again
# without its stat changing, so it is re-read until it has settled ("racy git" rule).
_SETTLE_S = 2

_key = None
_data = {}


def _path():
    return os.getenv("PERCH_SIM_WORLD")


def world():
    """The current world as a dict; {} when there is no world file."""
    global _key, _data
    path = _path()
    if not path:
        return {}
    try:
        st = os.stat(path)
    except OSError:
        _key = None
        _data = {}
        return _data
    key = (path, st[1], st[6], st[8])  # path, inode, size, mtime
    if key == _key:
        return _data
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        # caught mid-write: keep what we had, retry on the next call
        return _data
    if not isinstance(data, dict):
        data = {}
    _data = data
    _key = key if time.time() - st[8] > _SETTLE_S else None
    return _data


def get(name, default=None):
    return world().get(name, default)


def networks():
    """Well-formed network entries only: a bad entry must not take the radio down."""
    out = []
    nets = get("networks")
    if not isinstance(nets, list):
        return out
    for n in nets:
        if isinstance(n, dict) and isinstance(n.get("ssid"), str):
            out.append(n)
    return out


def find(ssid):
    for n in networks():
        if n["ssid"] == ssid:
            return n
    return None


def sensors():
    s = get("sensors")
    return s if isinstance(s, dict) else {}


def ms(name, default):
    """A duration in ms from the world (e.g. "scan_ms"), falling back to the default."""
    v = get(name, default)
    return v if isinstance(v, int) and v >= 0 else default


def base_mac():
    """The board's base MAC (machine.unique_id, the STA MAC) from PERCH_SIM_MAC."""
    try:
        return bytes.fromhex(os.getenv("PERCH_SIM_MAC") or "")[:6] or _DEFAULT_MAC
    except ValueError:
        return _DEFAULT_MAC


_DEFAULT_MAC = b"\x24\x0a\xc4\x00\x00\x01"
