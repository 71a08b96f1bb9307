# Host implementation of the ESP32 port's `network` module for the virtual board. The radio
# environment is the world file (machine._world), re-read on every call, so a test can make
# access points appear, vanish or change password while the board runs.
#
# On the chip this module is C and costs no heap. Here the calls a running board makes often
# live in this file; the rest of the API (WLAN.active/connect/disconnect/config/ipconfig,
# hostname, ipconfig) is in _netops.py, and what perch never uses (country, the other
# constants) in _netconst.py. Both are loaded for each use and dropped after
# (machine._lazy), so they cost the heap only while they run.
import hashlib
import time

import machine
from micropython import const

# The public constants (STA_IF, STAT_*, AUTH_*) are in _netops.py and _netconst.py: perch.hw
# reads them once, at import, and a name kept here costs a slot of this module's dict for the
# board's life.
_GOT_IP = const(1010)  # STAT_GOT_IP
_CONNECTING = const(1001)

_host = "mpy-esp32"  # hostname(), kept here while _netops comes and goes
_dns = "127.0.0.1"  # ipconfig("dns")
_wlan = {}  # interface id -> its one WLAN object (one radio, as on the chip)


def __getattr__(a, b=None):
    # The names of network (a) and the WLAN methods (a the WLAN, b the name) that _netops
    # holds, loaded for this use. A function of _netops keeps all of it loaded for as long as
    # someone holds it: perch holds none (it calls them; perch.hw has no aliases of them).
    if b is None:
        if a[0] == "_":
            raise AttributeError(a)
        return machine._lazy("_netops", a)
    return machine._lazy("_netops", "_bind")(a, b)


def _ap(n):
    # The scan tuple (ssid, bssid, channel, rssi, security, hidden) of world network n.
    # security: a world "security" name or AUTH_* int; else WPA2-PSK with a password, else open
    s = n.get("security")
    if type(s) is str:
        t = "open wep wpa wpa2 wpa/wpa2 wpa2/enterprise wpa3 wpa2/wpa3".split()
        s = s.lower().replace("-", "/")
        s = t.index(s) if s in t else None
    if type(s) is not int:
        s = 3 if n.get("password") else 0  # AUTH_WPA2_PSK, AUTH_OPEN
    r = n.get("rssi", -60)
    try:
        b = bytes.fromhex(n["bssid"].replace(":", ""))
    except (KeyError, AttributeError, ValueError):
        h = hashlib.sha256(("%s/%s" % (n["ssid"], n.get("channel", 1))).encode()).digest()
        b = bytes(((h[0] | 2) & 0xFE,)) + h[1:6]  # locally administered, unicast
    h = bool(n.get("hidden"))
    return (b"" if h else n["ssid"].encode(), b, n.get("channel", 1),
            r if type(r) is int else -60, s, h)


class WLAN:
    # The port's IF_*, SEC_* and PM_* class constants are left out, perch reads none of them
    # (each would cost a slot and an interned name); PM_NONE stays for scripts that set pm.
    PM_NONE = const(0)

    # What runs here is what a running board calls often; the rest of each method, and the
    # methods missing here (__getattr__), are in _netops.WLAN.

    def __new__(cls, interface_id=0):
        return _wlan.get(interface_id) or machine._lazy("_netops", "_new")(cls, interface_id)

    __getattr__ = __getattr__  # the module's, which hands out the methods _netops holds

    def isconnected(self):
        # Also advances the simulated station (_netops._poll): only when the world changed, a
        # connect attempt is due, or a lost AP may be back. Cheap while nothing changes.
        st = self.state
        if self.id or not self.on or st != _GOT_IP and st != _CONNECTING and not self.retry:
            return False
        if st == _CONNECTING:
            if time.ticks_diff(time.ticks_ms(), self.start) < machine._world("connect_ms", 800):
                return False
        elif machine._world() is self.seen:
            return st == _GOT_IP
        return machine._lazy("_netops", "_poll")(self)

    def status(self, param=None):
        if param is None and not self.id:
            self.isconnected()
            return self.state
        if param == "rssi" and self.isconnected():
            return _ap(self.net)[3]
        return machine._lazy("_netops", "WLAN").status(self, param)

    def scan(self):
        # Here rather than in _netops: perch scans in a thread, which must not import (unless
        # it scans with the radio off, to get the error).
        if self.id or not self.on:
            return machine._lazy("_netops", "WLAN").scan(self)
        # the chip's scan blocks the caller for the whole sweep over the channels
        time.sleep_ms(machine._world("scan_ms", 1200))
        # well-formed world networks only: a bad entry must not take the radio down
        return [_ap(n) for n in machine._world("networks", []) if type(n) is dict
                and type(n.get("ssid")) is str]

    def ifconfig(self, config=None):
        if config is not None:
            return machine._lazy("_netops", "WLAN").ifconfig(self, config)
        return self.ip if self.id or self.isconnected() else ("0.0.0.0",) * 4
