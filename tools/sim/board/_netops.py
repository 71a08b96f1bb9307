# The rarely called part of the virtual board's `network` module: machine._lazy loads this
# file for each use and drops it after, so it costs the board's heap only while it runs.
# WLAN here holds the methods of network.WLAN that network.WLAN.__getattr__ hands out;
# _netconst.py has the constants and functions perch never uses.
import time

import machine
import network
from micropython import const

_IDLE = const(1000)
_CONNECTING = const(1001)


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
    if i not in (network.STA_IF, network.AP_IF):
        raise ValueError("invalid WLAN interface identifier")
    w = network._wlan[i] = object.__new__(cls)
    mac = machine.unique_id()
    ssid = ""  # STA: the network to join; AP: the essid
    w.ip = ("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1")  # ifconfig() once connected
    if i == network.AP_IF:
        mac = mac[:5] + bytes(((mac[5] + 1) & 0xFF,))
        ssid = "ESP_%02X%02X%02X" % (mac[3], mac[4], mac[5])
        w.ip = ("192.168.4.1", "255.255.255.0", "192.168.4.1", "192.168.4.1")
    w.dhcp = True  # until ifconfig() or ipconfig(addr4=) sets the address
    w.ap = i
    w.on = False
    w.st = _IDLE
    w.net = None  # the world entry of the AP joined
    w.bssid = None
    w.t0 = 0  # ticks_ms when the connect attempt began
    w.retry = False  # AP vanished: rejoin by itself when it comes back, as the chip does
    w.w = None  # the world the station state was last worked out from
    w.c = {"mac": mac, "ssid": ssid, "key": "", "security": network.AUTH_OPEN, "channel": 1,
           "hidden": False, "max_clients": 4, "reconnects": 0, "txpower": 20, "pm": 1,
           "protocol": 7}
    return w


def __getattr__(name):
    # network's names that perch never uses
    return machine._lazy("_netconst", name)


def _poll(w):
    # network.WLAN.isconnected() of the station w, once the world changed or a wait ran out
    w.w = machine._world()
    st = w.st
    best = None  # the strongest AP broadcasting our SSID (and BSSID when pinned)
    for n in machine._get("networks", []):
        if type(n) is dict and n.get("ssid") == w.c["ssid"] and (
                not w.bssid or network._bssid(n) == w.bssid):
            if best is None or network._rssi(n) > network._rssi(best):
                best = n
    if st != network.STAT_GOT_IP and st != _CONNECTING:
        if best:  # the AP we lost is back: a new attempt
            w.st = _CONNECTING
            w.t0 = time.ticks_ms()
        return False
    w.net = None
    w.retry = best is None and st == network.STAT_GOT_IP
    if best is None:
        w.st = network.STAT_BEACON_TIMEOUT if w.retry else network.STAT_NO_AP_FOUND
    elif network._auth(best) != network.AUTH_OPEN and (best.get("password") or "") != w.c["key"]:
        w.st = network.STAT_WRONG_PASSWORD  # an open AP takes any key; this one deauths us
    else:
        w.st = network.STAT_GOT_IP
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


def _param(p):
    # the port's aliases of config() parameters
    return {"essid": "ssid", "authmode": "security", "password": "key",
            "dhcp_hostname": "hostname"}.get(p, p)


class WLAN:
    def status(self, param=None):
        # what network.WLAN.status does not answer itself
        if param is None:
            return None  # the AP has no status
        if param == "rssi":
            raise OSError("Wifi Not Connected")
        if param == "stations":
            if not self.ap:
                raise OSError("Wifi Invalid Mode")
            return []
        raise ValueError("unknown status param")

    def scan(self):
        # network.WLAN.scan with the radio off or in AP mode
        if self.ap:
            raise OSError("Wifi Invalid Mode")
        raise OSError("Wifi Not Started")

    def ifconfig(self, config):
        # network.WLAN.ifconfig setting a static address
        if len(config) != 4:
            raise ValueError("ifconfig needs a 4-tuple")
        self.ip = tuple(config)
        self.dhcp = False

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
        self.st = _CONNECTING
        self.t0 = time.ticks_ms()

    def disconnect(self):
        self.st = _IDLE
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
                return network._host
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
                hostname(v)
                continue
            if p not in c:
                raise ValueError("unknown config param")
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
        if args and kwargs:
            raise TypeError("either get or set")
        a = self.ifconfig()
        if not args:
            for k, v in kwargs.items():
                if k == "addr4":
                    ip, mask = v if isinstance(v, tuple) else (v.split("/")[0], "255.255.255.0")
                    self.ip = (ip, mask, self.ip[2], self.ip[3])
                    self.dhcp = False
                elif k not in ("dhcp4", "gw4", "autoconf6", "dhcp6"):
                    raise ValueError("unexpected key")
            return None
        k = args[0]
        if k == "addr4":
            return (a[0], a[1])
        if k == "gw4":
            return a[2]
        if k in ("dhcp4", "has_dhcp4"):
            return self.dhcp
        if k == "addr6":
            return []
        if k in ("has_autoconf6", "autoconf6"):
            return False
        raise ValueError("unexpected key")
