# The rarely called part of the virtual board's `network` module: machine._lazy loads this
# file for each use and drops it after, so it costs the board's heap only while it runs.
# WLAN here holds the methods of network.WLAN that network.WLAN.__getattr__ hands out.
import time

import network
from micropython import const

STAT_IDLE = const(1000)
STAT_CONNECTING = const(1001)
STAT_CONNECT_FAIL = const(203)
STAT_NO_AP_FOUND_W_COMPATIBLE_SECURITY = const(210)
STAT_NO_AP_FOUND_IN_AUTHMODE_THRESHOLD = const(211)
STAT_NO_AP_FOUND_IN_RSSI_THRESHOLD = const(212)
AUTH_WEP = const(1)
AUTH_WPA_PSK = const(2)
AUTH_WPA_WPA2_PSK = const(4)
AUTH_WPA2_ENTERPRISE = const(5)
AUTH_WPA3_PSK = const(6)
AUTH_WPA2_WPA3_PSK = const(7)
AUTH_WAPI_PSK = const(8)
AUTH_OWE = const(9)
AUTH_MAX = const(17)
MODE_11B = const(1)
MODE_11G = const(2)
MODE_11N = const(4)
MODE_LR = const(8)


def _text(v, what, limit):
    if isinstance(v, (bytes, bytearray)):
        v = bytes(v).decode()
    if type(v) is not str:
        raise TypeError(what + " must be str")
    if len(v.encode()) > limit:
        raise ValueError(what + " too long")
    return v


def _new(cls, i):
    # the state of interface i (network.WLAN keeps the one object per interface)
    import machine

    w = object.__new__(cls)
    mac = machine.unique_id()
    ssid = ""  # STA: the network to join; AP: the essid
    if i == network.AP_IF:
        mac = mac[:5] + bytes(((mac[5] + 1) & 0xFF,))
        ssid = "ESP_%02X%02X%02X" % (mac[3], mac[4], mac[5])
    w.ap = i
    w.on = False
    w.st = STAT_IDLE
    w.net = None  # the world entry of the AP joined
    w.bssid = None
    w.t0 = 0  # ticks_ms when the connect attempt began
    w.retry = False  # AP vanished: rejoin by itself when it comes back, as the chip does
    w.ip = None  # static ifconfig
    w.c = {"mac": mac, "ssid": ssid, "key": "", "security": network.AUTH_OPEN, "channel": 1,
           "hidden": False, "max_clients": 4, "reconnects": 0, "txpower": 20, "pm": 1,
           "protocol": 7}
    return w


def country(code=None):
    if code is None:
        return getattr(network, "_country", "01")
    network._country = _text(code, "country", 2)


def _param(p):
    # the port's aliases of config() parameters
    return {"essid": "ssid", "authmode": "security", "password": "key",
            "dhcp_hostname": "hostname"}.get(p, p)


class WLAN:
    def active(self, is_active=None):
        if is_active is None:
            return self.on
        self.on = bool(is_active)
        if not self.on:
            WLAN.disconnect(self)

    def connect(self, ssid=None, key=None, *, bssid=None):
        if self.ap:
            raise OSError("Wifi Invalid Mode")
        if not self.on:
            raise OSError("Wifi Not Started")
        if ssid is not None:
            self.c["ssid"] = _text(ssid, "ssid", 32)
            self.c["key"] = "" if key is None else _text(key, "key", 64)
        elif not self.c["ssid"]:
            raise OSError("Wifi SSID not configured")
        WLAN.disconnect(self)
        self.bssid = bytes(bssid) if bssid else None
        self.st = STAT_CONNECTING
        self.t0 = time.ticks_ms()

    def disconnect(self):
        self.st = STAT_IDLE
        self.retry = False
        self.net = None

    def config(self, *args, **kwargs):
        c = self.c
        if args and kwargs:
            raise TypeError("either get or set")
        if args:
            if len(args) != 1:
                raise TypeError("can query only one param")
            p = _param(args[0])
            if p == "hostname":
                return network.hostname()
            if p == "channel" and self.net:
                return self.net.get("channel", 1)
            if p == "key" or p not in c:
                raise ValueError("unknown config param")  # the key is write-only
            return c[p]
        if self.ap:
            # checked before anything is applied: the chip rejects the whole config at once
            k = kwargs.get
            if k("security", k("authmode", c["security"])) and len(
                    k("key", k("password", c["key"]))) < 8:
                raise OSError("Wifi Invalid Password")
        for p, v in kwargs.items():
            p = _param(p)
            if p == "hostname":
                network.hostname(v)
                continue
            if p not in c:
                raise ValueError("unknown config param")
            if p == "mac":
                if len(v) != 6:
                    raise ValueError("invalid buffer length")
                v = bytes(v)
            elif p in ("ssid", "key"):
                v = _text(v, p, 32 if p == "ssid" else 64)
            elif p == "security" and not 0 <= v < AUTH_MAX:
                raise ValueError("invalid authmode")
            elif p == "channel" and not 1 <= v <= 14:
                raise OSError("Wifi Invalid Argument")
            elif p == "hidden":
                v = bool(v)
            c[p] = v

    def ipconfig(self, *args, **kwargs):
        if args and kwargs:
            raise TypeError("either get or set")
        a = self.ifconfig()
        if not args:
            for k, v in kwargs.items():
                if k == "addr4":
                    ip, mask = v if isinstance(v, tuple) else (v.split("/")[0], "255.255.255.0")
                    self.ip = (ip, mask, a[2], a[3])
                elif k not in ("dhcp4", "gw4", "autoconf6", "dhcp6"):
                    raise ValueError("unexpected key")
            return None
        k = args[0]
        if k == "addr4":
            return (a[0], a[1])
        if k == "gw4":
            return a[2]
        if k in ("dhcp4", "has_dhcp4"):
            return self.ip is None
        if k == "addr6":
            return []
        if k in ("has_autoconf6", "autoconf6"):
            return False
        raise ValueError("unexpected key")
