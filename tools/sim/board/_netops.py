# The rarely called part of the virtual board's `network` module: machine._lazy loads this
# file for each use and drops it after, so it costs the board's heap only while it runs.
# WLAN here holds what network.WLAN does not do itself (its __getattr__ hands these methods
# out); _netconst.py has what perch never uses.
#
# The state of an interface w (one object per interface, made by _new):
#   w.id     STA_IF or AP_IF              w.on     active()
#   w.state  status()                     w.net    the world entry of the AP joined, or None
#   w.start  ticks_ms of the connect attempt
#   w.retry  the AP vanished: rejoin by itself when it comes back, as the chip does
#   w.seen   the world the state was last worked out from
#   w.ip     ifconfig() while up           w.c      config() values set, plus the key,
#                                                   "bssid" (pinned) and "dhcp" (False: static)
import time

import machine
import network
from micropython import const

_IDLE = const(1000)
_CONNECTING = const(1001)
_GOT_IP = const(1010)

# network's constants that perch.hw reads (once, at import); the rest are in _netconst.py
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


def _text(v, what, limit):
    if isinstance(v, (bytes, bytearray)):
        v = bytes(v).decode()
    if type(v) is not str:
        raise TypeError(what + " must be str")
    if len(v.encode()) > limit:
        raise ValueError(what + " too long")
    return v


def _new(cls, i):
    # network.WLAN(i) the first time: the one object of interface i
    if i not in (STA_IF, AP_IF):
        raise ValueError("invalid WLAN interface identifier")
    w = network._wlan[i] = object.__new__(cls)
    w.id = i
    w.on = False
    w.state = _IDLE
    w.net = None
    w.start = 0
    w.retry = False
    w.seen = None
    w.ip = (("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1") if i == STA_IF
            else ("192.168.4.1", "255.255.255.0", "192.168.4.1", "192.168.4.1"))
    w.c = {}
    return w


def __getattr__(name):
    # network's names that perch never uses
    return machine._lazy("_netconst", name)


def _bind(w, name):
    # network.WLAN.<name> of w, bound (network.WLAN.__getattr__): whoever holds it keeps this
    # module loaded, which perch never does (it calls the methods, holding none)
    if name not in ("active", "connect", "disconnect", "config", "ipconfig"):
        raise AttributeError(name)
    return lambda *x, **k: getattr(WLAN, name)(w, *x, **k)


def _poll(w):
    # network.WLAN.isconnected() of the station w, once the world changed or a wait ran out
    w.seen = machine._world()
    st = w.state
    best = a = None  # the strongest AP broadcasting our SSID (and BSSID when pinned); a: its
    for n in machine._world("networks", []):  # scan tuple
        if type(n) is dict and type(n.get("ssid")) is str and n["ssid"] == w.c.get("ssid"):
            t = network._ap(n)
            if (not w.c.get("bssid") or t[1] == w.c["bssid"]) and (a is None or t[3] > a[3]):
                best, a = n, t
    if st != _GOT_IP and st != _CONNECTING:
        if best:  # the AP we lost is back: a new attempt
            w.state = _CONNECTING
            w.start = time.ticks_ms()
        return False
    w.net = None
    w.retry = best is None and st == _GOT_IP
    if best is None:
        w.state = STAT_BEACON_TIMEOUT if w.retry else STAT_NO_AP_FOUND
    elif a[4] and (best.get("password") or "") != w.c.get("key", ""):
        w.state = STAT_WRONG_PASSWORD  # an open AP takes any key; this one deauths us
    else:
        w.state = _GOT_IP
        w.net = best
    return w.net is not None


def hostname(name=None):
    if name is None:
        return network._host
    network._host = _text(name, "hostname", 32)


def ipconfig(*args, **kwargs):
    if args and kwargs:
        raise TypeError("either get or set")
    for k in args or kwargs:
        if k == "dns":
            if args:
                return network._dns
            network._dns = kwargs[k]
        elif k == "prefer":
            if args:
                return 4
        else:
            raise ValueError("unexpected key")


class WLAN:
    def status(self, param=None):
        # what network.WLAN.status does not answer itself
        if param is None:
            return None  # the AP has no status
        if param == "rssi":
            raise OSError("Wifi Not Connected")
        if param == "stations":
            if not self.id:
                raise OSError("Wifi Invalid Mode")
            return []
        raise ValueError("unknown status param")

    def scan(self):
        # network.WLAN.scan with the radio off or in AP mode: connect() has the same errors
        WLAN.connect(self, "")

    def ifconfig(self, config):
        # network.WLAN.ifconfig setting a static address
        if len(config) != 4:
            raise ValueError("ifconfig needs a 4-tuple")
        self.ip = tuple(config)
        self.c["dhcp"] = False

    def active(self, is_active=None):
        if is_active is None:
            return self.on
        self.on = bool(is_active)
        if not self.on:
            WLAN.disconnect(self)

    def connect(self, ssid=None, key=None, *, bssid=None):
        if self.id:
            raise OSError("Wifi Invalid Mode")
        if not self.on:
            raise OSError("Wifi Not Started")
        if ssid is not None:
            self.c["ssid"] = _text(ssid, "ssid", 32)
            self.c["key"] = "" if key is None else _text(key, "key", 64)
        elif not self.c.get("ssid"):
            raise OSError("Wifi SSID not configured")
        WLAN.disconnect(self)
        self.c["bssid"] = bytes(bssid) if bssid else None
        self.state = _CONNECTING
        self.start = time.ticks_ms()

    def disconnect(self):
        self.state = _IDLE
        self.retry = False
        self.net = None

    def config(self, *args, **kwargs):
        c = self.c
        if args and kwargs:
            raise TypeError("either get or set")
        mac = machine.unique_id()
        if self.id:  # the AP's MAC is the base MAC + 1
            mac = mac[:5] + bytes(((mac[5] + 1) & 0xFF,))
        # the port's aliases, and the defaults of what has not been set
        alias = {"essid": "ssid", "authmode": "security", "password": "key",
                 "dhcp_hostname": "hostname"}
        d = {"mac": mac, "ssid": "ESP_%02X%02X%02X" % (mac[3], mac[4], mac[5]) if self.id
             else "", "security": AUTH_OPEN, "channel": 1, "hidden": False,
             "max_clients": 4, "reconnects": 0, "txpower": 20, "pm": 1, "protocol": 7,
             "hostname": network._host}
        if args:
            if len(args) != 1:
                raise TypeError("can query only one param")
            p = alias.get(args[0], args[0])
            if p not in d:
                raise ValueError("unknown config param")  # the key is write-only too
            if p == "channel" and self.net:
                return self.net.get("channel", 1)
            return c.get(p, d[p])
        if self.id:
            # checked before anything is applied: the chip rejects the whole config at once
            k = kwargs.get
            if k("security", k("authmode", c.get("security"))) and len(
                    k("key", k("password", c.get("key", "")))) < 8:
                raise OSError("Wifi Invalid Password")
        for p, v in kwargs.items():
            p = alias.get(p, p)
            if p not in d and p != "key":
                raise ValueError("unknown config param")
            if p == "hostname":
                hostname(v)
                continue
            if p == "mac":
                if len(v) != 6:
                    raise ValueError("invalid buffer length")
                v = bytes(v)
            elif p in ("ssid", "key"):
                v = _text(v, p, 32 if p == "ssid" else 64)
            elif p == "security" and not 0 <= v < 17:  # AUTH_MAX
                raise ValueError("invalid authmode")
            elif p == "channel" and not 1 <= v <= 14:
                raise OSError("Wifi Invalid Argument")
            elif p == "hidden":
                v = bool(v)
            c[p] = v

    def ipconfig(self, *args, **kwargs):
        return machine._lazy("_netconst", "_ipconfig")(self, args, kwargs)
