# Host implementation of the ESP32 port's `network` module for the virtual board.
# The radio environment comes from the world file (see _world.py), re-read on every call,
# so a test can make access points appear, vanish or change password while the board runs.
import hashlib
import time

import _world
from micropython import const

STA_IF = const(0)
AP_IF = const(1)

STAT_IDLE = const(1000)
STAT_CONNECTING = const(1001)
STAT_GOT_IP = const(1010)
STAT_BEACON_TIMEOUT = const(200)
STAT_NO_AP_FOUND = const(201)
STAT_WRONG_PASSWORD = const(202)
STAT_ASSOC_FAIL = const(203)
STAT_CONNECT_FAIL = const(203)
STAT_HANDSHAKE_TIMEOUT = const(204)
STAT_NO_AP_FOUND_W_COMPATIBLE_SECURITY = const(210)
STAT_NO_AP_FOUND_IN_AUTHMODE_THRESHOLD = const(211)
STAT_NO_AP_FOUND_IN_RSSI_THRESHOLD = const(212)

AUTH_OPEN = const(0)
AUTH_WEP = const(1)
AUTH_WPA_PSK = const(2)
AUTH_WPA2_PSK = const(3)
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

_STA_IP = ("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1")
_AP_IP = ("192.168.4.1", "255.255.255.0", "192.168.4.1", "192.168.4.1")
_NO_IP = ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")

# world "security" names -> authmode; an int in the world file is taken as is
_SECURITY = {
    "open": AUTH_OPEN,
    "wep": AUTH_WEP,
    "wpa": AUTH_WPA_PSK,
    "wpa2": AUTH_WPA2_PSK,
    "wpa/wpa2": AUTH_WPA_WPA2_PSK,
    "wpa-wpa2": AUTH_WPA_WPA2_PSK,
    "wpa2-enterprise": AUTH_WPA2_ENTERPRISE,
    "wpa3": AUTH_WPA3_PSK,
    "wpa2/wpa3": AUTH_WPA2_WPA3_PSK,
    "wpa2-wpa3": AUTH_WPA2_WPA3_PSK,
}

_hostname = ["mpy-esp32"]
_country = ["01"]
_dns = ["127.0.0.1"]


def _err(msg):
    # the ESP32 port turns esp_err_t codes into OSError with a readable message
    return OSError(msg)


def _auth(net):
    sec = net.get("security")
    if isinstance(sec, int):
        return sec
    if isinstance(sec, str) and sec.lower() in _SECURITY:
        return _SECURITY[sec.lower()]
    return AUTH_WPA2_PSK if net.get("password") else AUTH_OPEN


def _bssid(net):
    b = net.get("bssid")
    if isinstance(b, str):
        try:
            return bytes.fromhex(b.replace(":", ""))
        except ValueError:
            pass
    h = hashlib.sha256((net["ssid"] + "/" + str(net.get("channel", 1))).encode()).digest()
    return bytes([(h[0] | 2) & 0xFE]) + h[1:6]  # locally administered, unicast


def _rssi(net):
    r = net.get("rssi", -60)
    return r if isinstance(r, int) else -60


def _pick(ssid, bssid):
    """The strongest world AP broadcasting `ssid` (and `bssid` when pinned), or None."""
    best = None
    for n in _world.networks():
        if n["ssid"] != ssid or (bssid and _bssid(n) != bssid):
            continue
        if best is None or _rssi(n) > _rssi(best):
            best = n
    return best


def _key_ok(net, key):
    if _auth(net) == AUTH_OPEN:
        return True  # an open AP accepts any station, whatever key it was given
    return (net.get("password") or "") == (key or "")


def _text(v, what, limit):
    if isinstance(v, (bytes, bytearray)):
        v = bytes(v).decode()
    if not isinstance(v, str):
        raise TypeError(what + " must be str")
    if len(v.encode()) > limit:
        raise ValueError(what + " too long")
    return v


class _Iface:
    def __init__(self, if_id):
        self.if_id = if_id
        self.active = False
        self.status = STAT_IDLE
        self.ssid = ""  # STA: configured network; AP: essid
        self.key = ""
        self.bssid = None
        self.since = 0  # ticks_ms when the current connect attempt began
        self.retry = False  # AP vanished: rejoin by itself when it comes back, as the chip does
        self.net = None
        self.static = None
        mac = _world.base_mac()
        if if_id == AP_IF:
            mac = mac[:5] + bytes([(mac[5] + 1) & 0xFF])
            self.ssid = f"ESP_{mac[3]:02X}{mac[4]:02X}{mac[5]:02X}"
        self.mac = mac
        self.authmode = AUTH_OPEN
        self.channel = 1
        self.hidden = False
        self.max_clients = 4
        self.reconnects = 0
        self.txpower = 20
        self.pm = 1
        self.protocol = 7

    def begin(self):
        self.status = STAT_CONNECTING
        self.since = time.ticks_ms()

    def poll(self):
        """Advance the simulated link from the world file; cheap when nothing changed."""
        if self.if_id != STA_IF or not self.active:
            return
        st = self.status
        if st == STAT_CONNECTING:
            if time.ticks_diff(time.ticks_ms(), self.since) < _world.ms("connect_ms", 800):
                return
            net = _pick(self.ssid, self.bssid)
            self.retry = False
            if net is None:
                self.status = STAT_NO_AP_FOUND
            elif not _key_ok(net, self.key):
                self.status = STAT_WRONG_PASSWORD
            else:
                self.status = STAT_GOT_IP
                self.net = net
        elif st == STAT_GOT_IP:
            net = _pick(self.ssid, self.bssid)
            if net is None:
                self.status = STAT_BEACON_TIMEOUT
                self.retry = True
                self.net = None
            elif not _key_ok(net, self.key):
                self.status = STAT_WRONG_PASSWORD  # the AP deauthenticates us
                self.net = None
            else:
                self.net = net
        elif self.retry and _pick(self.ssid, self.bssid) is not None:
            self.begin()


_ifaces = [_Iface(STA_IF), _Iface(AP_IF)]


def _sta_up():
    """True while the simulated station holds an IP; socket.py gates outbound traffic on it."""
    sta = _ifaces[STA_IF]
    sta.poll()
    return sta.active and sta.status == STAT_GOT_IP


def hostname(name=None):
    if name is None:
        return _hostname[0]
    _hostname[0] = _text(name, "hostname", 32)


def country(code=None):
    if code is None:
        return _country[0]
    _country[0] = _text(code, "country", 2)


def ipconfig(*args, **kwargs):
    if args and kwargs:
        raise TypeError("either get or set")
    if args:
        if args[0] == "dns":
            return _dns[0]
        if args[0] == "prefer":
            return 4
        raise ValueError("unexpected key")
    for k, v in kwargs.items():
        if k == "dns":
            _dns[0] = v
        elif k != "prefer":
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

    def __init__(self, interface_id=STA_IF):
        if interface_id not in (STA_IF, AP_IF):
            raise ValueError("invalid WLAN interface identifier")
        # one radio: every WLAN(STA_IF) object shares the same state, as on the chip
        self._i = _ifaces[interface_id]

    def active(self, is_active=None):
        i = self._i
        if is_active is None:
            return i.active
        i.active = bool(is_active)
        if not i.active:
            i.status = STAT_IDLE
            i.retry = False
            i.net = None

    def _need_active(self):
        if not self._i.active:
            raise _err("Wifi Not Started")

    def connect(self, ssid=None, key=None, *, bssid=None):
        i = self._i
        if i.if_id != STA_IF:
            raise _err("Wifi Invalid Mode")
        self._need_active()
        if ssid is not None:
            i.ssid = _text(ssid, "ssid", 32)
            i.key = "" if key is None else _text(key, "key", 64)
        elif not i.ssid:
            raise _err("Wifi SSID not configured")
        i.bssid = bytes(bssid) if bssid else None
        i.retry = False
        i.net = None
        i.begin()

    def disconnect(self):
        i = self._i
        i.status = STAT_IDLE
        i.retry = False
        i.net = None

    def isconnected(self):
        i = self._i
        if i.if_id == AP_IF:
            return False  # no simulated stations associate with our AP
        i.poll()
        return i.active and i.status == STAT_GOT_IP

    def status(self, param=None):
        i = self._i
        if param is None:
            if i.if_id == AP_IF:
                return None
            i.poll()
            return i.status if i.active else STAT_IDLE
        if param == "rssi":
            if i.if_id != STA_IF or not self.isconnected():
                raise _err("Wifi Not Connected")
            return _rssi(i.net)
        if param == "stations":
            if i.if_id != AP_IF:
                raise _err("Wifi Invalid Mode")
            return []
        raise ValueError("unknown status param")

    def scan(self):
        if self._i.if_id != STA_IF:
            raise _err("Wifi Invalid Mode")
        self._need_active()
        # the chip's scan blocks the caller for the whole sweep over the channels
        time.sleep_ms(_world.ms("scan_ms", 1200))
        out = []
        for n in _world.networks():
            hidden = bool(n.get("hidden"))
            ssid = b"" if hidden else n["ssid"].encode()
            out.append((ssid, _bssid(n), n.get("channel", 1), _rssi(n), _auth(n), hidden))
        return out

    def _addr(self):
        i = self._i
        if i.if_id == AP_IF:
            return i.static or _AP_IP
        if _sta_up():
            return i.static or _STA_IP
        return _NO_IP

    def ifconfig(self, config=None):
        if config is None:
            return self._addr()
        if len(config) != 4:
            raise ValueError("ifconfig needs a 4-tuple")
        self._i.static = tuple(config)

    def ipconfig(self, *args, **kwargs):
        if args and kwargs:
            raise TypeError("either get or set")
        if not args:
            for k, v in kwargs.items():
                if k == "addr4":
                    ip, mask = v if isinstance(v, tuple) else (v.split("/")[0], "255.255.255.0")
                    a = self._addr()
                    self._i.static = (ip, mask, a[2], a[3])
                elif k not in ("dhcp4", "gw4", "autoconf6", "dhcp6"):
                    raise ValueError("unexpected key")
            return None
        a = self._addr()
        key = args[0]
        if key == "addr4":
            return (a[0], a[1])
        if key == "gw4":
            return a[2]
        if key in ("dhcp4", "has_dhcp4"):
            return self._i.static is None
        if key in ("addr6",):
            return []
        if key in ("has_autoconf6", "autoconf6"):
            return False
        raise ValueError("unexpected key")

    def config(self, *args, **kwargs):
        i = self._i
        if args and kwargs:
            raise TypeError("either get or set")
        if args:
            if len(args) != 1:
                raise TypeError("can query only one param")
            return self._get(args[0])
        if i.if_id == AP_IF:
            # checked before anything is applied: the chip rejects the whole config at once
            auth = kwargs.get("security", kwargs.get("authmode", i.authmode))
            key = kwargs.get("key", kwargs.get("password", i.key))
            if auth != AUTH_OPEN and len(key) < 8:
                raise _err("Wifi Invalid Password")
        for k, v in kwargs.items():
            self._set(k, v)
        return None

    def _get(self, p):
        i = self._i
        if p == "mac":
            return i.mac
        if p in ("ssid", "essid"):
            return i.ssid
        if p == "channel":
            return i.net.get("channel", 1) if i.if_id == STA_IF and i.net else i.channel
        if p == "hidden":
            return i.hidden
        if p in ("security", "authmode"):
            return i.authmode
        if p in ("hostname", "dhcp_hostname"):
            return _hostname[0]
        if p == "max_clients":
            return i.max_clients
        if p == "reconnects":
            return i.reconnects
        if p == "txpower":
            return i.txpower
        if p == "pm":
            return i.pm
        if p == "protocol":
            return i.protocol
        raise ValueError("unknown config param")

    def _set(self, k, v):
        i = self._i
        if k == "mac":
            if len(v) != 6:
                raise ValueError("invalid buffer length")
            i.mac = bytes(v)
        elif k in ("ssid", "essid"):
            i.ssid = _text(v, "ssid", 32)
        elif k in ("key", "password"):
            i.key = _text(v, "key", 64)
        elif k in ("security", "authmode"):
            if not 0 <= v < AUTH_MAX:
                raise ValueError("invalid authmode")
            i.authmode = v
        elif k == "channel":
            if not 1 <= v <= 14:
                raise _err("Wifi Invalid Argument")
            i.channel = v
        elif k == "hidden":
            i.hidden = bool(v)
        elif k in ("hostname", "dhcp_hostname"):
            hostname(v)
        elif k == "max_clients":
            i.max_clients = int(v)
        elif k == "reconnects":
            i.reconnects = int(v)
        elif k == "txpower":
            i.txpower = v
        elif k == "pm":
            i.pm = int(v)
        elif k == "protocol":
            i.protocol = int(v)
        else:
            raise ValueError("unknown config param")
