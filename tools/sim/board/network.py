# Host implementation of the ESP32 port's `network` module for the virtual board. The radio
# environment is the world file (machine._world), re-read on every call, so a test can make
# access points appear, vanish or change password while the board runs.
#
# On the chip this module is C and costs no heap. Here the calls a running board makes often
# live in this file; the rest of the API (WLAN.active/connect/disconnect/config/ipconfig,
# country, the other constants) is in _netops.py, which is loaded for each use and dropped
# after (machine._lazy), so it costs the heap only while it runs.
import hashlib
import time

import machine
from micropython import const

STA_IF = const(0)
AP_IF = const(1)
STAT_BEACON_TIMEOUT = const(200)
STAT_NO_AP_FOUND = const(201)
STAT_WRONG_PASSWORD = const(202)
STAT_ASSOC_FAIL = const(203)
STAT_HANDSHAKE_TIMEOUT = const(204)
STAT_GOT_IP = const(1010)
AUTH_OPEN = const(0)
AUTH_WPA2_PSK = const(3)
_CONNECTING = const(1001)

_host = "mpy-esp32"
_dns = "127.0.0.1"
_wlan = [None, None]  # one radio: every WLAN(STA_IF) is the same object, as on the chip


def __getattr__(name):
    if name[0] == "_":
        raise AttributeError(name)
    return machine._lazy("_netops", name)


def _nets():
    """Well-formed world networks only: a bad entry must not take the radio down."""
    return [n for n in machine._get("networks", []) if type(n) is dict
            and type(n.get("ssid")) is str]


def _auth(net):
    # a world "security" name or AUTH_* int; WPA2-PSK with a password, else open
    s = net.get("security")
    if type(s) is int:
        return s
    if type(s) is str:
        s = s.lower().replace("-", "/")
        t = ("open", "wep", "wpa", "wpa2", "wpa/wpa2", "wpa2/enterprise", "wpa3", "wpa2/wpa3")
        if s in t:
            return t.index(s)
    return AUTH_WPA2_PSK if net.get("password") else AUTH_OPEN


def _rssi(net):
    r = net.get("rssi", -60)
    return r if type(r) is int else -60


def _bssid(net):
    try:
        return bytes.fromhex(net["bssid"].replace(":", ""))
    except (KeyError, AttributeError, ValueError):
        pass
    h = hashlib.sha256(("%s/%s" % (net["ssid"], net.get("channel", 1))).encode()).digest()
    return bytes(((h[0] | 2) & 0xFE,)) + h[1:6]  # locally administered, unicast


def hostname(name=None):
    global _host
    if name is None:
        return _host
    _host = machine._lazy("_netops", "_text")(name, "hostname", 32)


def ipconfig(*args, **kwargs):
    global _dns
    if args and kwargs:
        raise TypeError("either get or set")
    for k in args or kwargs:
        if k == "dns":
            if args:
                return _dns
            _dns = kwargs[k]
        elif k == "prefer":
            if args:
                return 4
        else:
            raise ValueError("unexpected key")


class WLAN:
    IF_STA = const(0)
    IF_AP = const(1)
    SEC_OPEN = const(0)
    SEC_WEP = const(1)
    SEC_WPA = const(2)
    SEC_WPA2 = const(3)
    SEC_WPA_WPA2 = const(4)
    SEC_WPA2_ENT = const(5)
    SEC_WPA3 = const(6)
    SEC_WPA2_WPA3 = const(7)
    PM_NONE = const(0)
    PM_PERFORMANCE = const(1)
    PM_POWERSAVE = const(2)

    def __new__(cls, interface_id=STA_IF):
        if interface_id not in (STA_IF, AP_IF):
            raise ValueError("invalid WLAN interface identifier")
        w = _wlan[interface_id]
        if w is None:
            w = _wlan[interface_id] = machine._lazy("_netops", "_new")(cls, interface_id)
        return w

    def __getattr__(self, name):
        # the methods that live in _netops.WLAN
        if name not in ("active", "connect", "disconnect", "config", "ipconfig"):
            raise AttributeError(name)
        return lambda *a, **k: getattr(machine._lazy("_netops", "WLAN"), name)(self, *a, **k)

    def isconnected(self):
        # also advances the simulated station from the world: cheap while nothing changed
        if self.ap or not self.on:
            return False
        st = self.st
        if st == _CONNECTING:
            if time.ticks_diff(time.ticks_ms(), self.t0) < machine._get("connect_ms", 800):
                return False
        elif st != STAT_GOT_IP and not self.retry:
            return False
        best = None  # the strongest AP broadcasting our SSID (and BSSID when pinned)
        for n in _nets():
            if n["ssid"] == self.c["ssid"] and (not self.bssid or _bssid(n) == self.bssid):
                if best is None or _rssi(n) > _rssi(best):
                    best = n
        if st != STAT_GOT_IP and st != _CONNECTING:
            if best:  # the AP we lost is back: a new attempt
                self.st = _CONNECTING
                self.t0 = time.ticks_ms()
            return False
        self.net = None
        self.retry = best is None and st == STAT_GOT_IP
        if best is None:
            self.st = STAT_BEACON_TIMEOUT if st == STAT_GOT_IP else STAT_NO_AP_FOUND
        elif _auth(best) != AUTH_OPEN and (best.get("password") or "") != self.c["key"]:
            self.st = STAT_WRONG_PASSWORD  # an open AP takes any key; this one deauths us
        else:
            self.st = STAT_GOT_IP
            self.net = best
        return self.net is not None

    def status(self, param=None):
        if param is None:
            if self.ap:
                return None
            self.isconnected()
            return self.st
        if param == "rssi":
            if not self.isconnected():
                raise OSError("Wifi Not Connected")
            return _rssi(self.net)
        if param == "stations":
            if not self.ap:
                raise OSError("Wifi Invalid Mode")
            return []
        raise ValueError("unknown status param")

    def scan(self):
        # here rather than in _netops: perch scans in a thread, which must not import
        if self.ap:
            raise OSError("Wifi Invalid Mode")
        if not self.on:
            raise OSError("Wifi Not Started")
        # the chip's scan blocks the caller for the whole sweep over the channels
        time.sleep_ms(machine._get("scan_ms", 1200))
        return [(b"" if n.get("hidden") else n["ssid"].encode(), _bssid(n), n.get("channel", 1),
                 _rssi(n), _auth(n), bool(n.get("hidden"))) for n in _nets()]

    def ifconfig(self, config=None):
        if config is not None:
            if len(config) != 4:
                raise ValueError("ifconfig needs a 4-tuple")
            self.ip = tuple(config)
        elif self.ap:
            return self.ip or ("192.168.4.1", "255.255.255.0", "192.168.4.1", "192.168.4.1")
        elif self.isconnected():
            return self.ip or ("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1")
        else:
            return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")
