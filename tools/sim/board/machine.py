# Host implementation of the ESP32 port's `machine` module for the virtual board. On the chip
# `machine` is C and costs no heap, so only what a booted board uses lives here: resets, the
# watchdog. The rest loads on first use (__getattr__ below). Resets and the watchdog
# are carried out by the supervisor (tools/sim/runner.py), listening on UDP
# 127.0.0.1:$PERCH_SIM_CTL. This module also reads the world file for network, esp32 and the
# sensor models (_world): one reader, one module fewer on the board.
import json
import os
import socket
import sys
import time

# The *_RESET constants are in _rtc.py (loaded for each use, as RTC): perch reads none of them,
# and each name here would cost a slot of this module's dict for the board's life.

# World file (PERCH_SIM_WORLD), JSON, rewritten by tests while the board runs:
#   {"networks": [{"ssid": "home", "password": "pw", "rssi": -50, "channel": 6,
#                  "security": "wpa2",  # open|wep|wpa|wpa2|wpa/wpa2|wpa3|wpa2/wpa3 or an
#                                       # AUTH_* int; default wpa2 with a password, else open
#                  "hidden": false, "bssid": "aa:bb:cc:dd:ee:ff"}],   # bssid optional
#    "connect_ms": 800,   # how long WLAN.connect() stays CONNECTING
#    "scan_ms": 1200,     # how long WLAN.scan() blocks its caller
#    "sensors": {...}}    # see _sensors.py; "adc"/"pins" are read without it too
_wkey = None  # _stat() of the file parsed last; None while it may still change
_wdata = {}
_ctl = None  # (socket, address) of the supervisor once opened


# Functions on the hot path stay small: a function whose locals, stack and try blocks need
# more than a few words gets its frame from the heap on every call, several times slower.


def _stat():
    # (inode, size, mtime) of the world file, which tell a new one; None without one
    try:
        st = os.stat(os.getenv("PERCH_SIM_WORLD"))
    except (OSError, TypeError):  # no world file (or none named)
        return None
    return (st[1], st[6], st[8])


def _read(key):
    # the world file as a dict, parsed again since its stat changed to `key`
    global _wkey
    d = {}
    if key:
        try:
            with open(os.getenv("PERCH_SIM_WORLD")) as f:
                d = json.load(f)
            # mtimes have one-second resolution: a file this fresh may change again without
            # its stat changing, so it is read again until it has settled ("racy git" rule)
            _wkey = key if time.time() - key[2] > 2 else None
        except (OSError, ValueError):
            return _wdata  # caught mid-write: keep what we had, read it again next time
    else:
        _wkey = None
    if type(d) is not dict:
        d = {}
    return _wdata if d == _wdata else d  # new content, new object: network tells by identity


def _world(name=None, default=None):
    """The world as a dict ({} without one), or its value `name`: `default` when absent, of
    another type than it, or a negative number."""
    global _wdata
    if _wkey is None or _stat() != _wkey:
        _wdata = _read(_stat())
    if name is None:
        return _wdata
    v = _wdata.get(name, default)
    return v if type(v) is type(default) and (type(v) is not int or v >= 0) else default


def _lazy(module, name):
    """`name` from `module`, imported for this use and dropped from sys.modules: what the
    board rarely uses then costs the heap only while it is in use (its names stay interned)."""
    try:
        return getattr(__import__(module), name)
    finally:
        sys.modules.pop(module, None)


def _ctl_send(data):
    global _ctl
    port = os.getenv("PERCH_SIM_CTL")
    if not port:
        return  # not under the supervisor (a bare test run): nobody to reset us
    if _ctl is None:
        net = getattr(socket, "_real", socket)  # the built-in: works while the station is down
        _ctl = (net.socket(net.AF_INET, net.SOCK_DGRAM),
                net.getaddrinfo("127.0.0.1", int(port))[0][-1])
    _ctl[0].sendto(data, _ctl[1])


def reset():
    # The supervisor is told first, so it still reboots us if device code swallows the
    # SystemExit with a bare except; exit code 75 is the normal path.
    _ctl_send("reset")
    try:
        sys.stdout.flush()
    except (AttributeError, OSError):
        pass
    raise SystemExit(75)


soft_reset = reset


class WDT:
    def __init__(self, id=0, timeout=5000):
        _lazy("_rtc", "_wdt")(id, timeout)  # once per boot: checked and started there

    def feed(self):
        _ctl_send("feed")


def __getattr__(name):
    # RTC (set by the NTP sync), the reset cause and the MAC load for each use (_rtc.py); the
    # peripherals and the rest of the API load on first use and stay (_machine_io.py)
    if name[0] == "_":
        raise AttributeError(name)
    if name in ("RTC", "reset_cause", "unique_id") or name.endswith("_RESET"):
        return _lazy("_rtc", name)
    m = __import__("_machine_io")
    v = getattr(m, name)
    globals()[name] = v
    return v
