# What perch never uses of the virtual board's `network` module: network loads this file on
# each use of one of these names and drops it after (machine._lazy).
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


def country(code=None):
    import machine
    import network

    if code is None:
        return getattr(network, "_country", "01")
    network._country = machine._lazy("_netops", "_text")(code, "country", 2)


def _ipconfig(w, args, kwargs):
    # network.WLAN(...).ipconfig() of interface w
    if args and kwargs:
        raise TypeError("either get or set")
    a = w.ifconfig()
    if not args:
        for k, v in kwargs.items():
            if k == "addr4":
                ip, mask = v if isinstance(v, tuple) else (v.split("/")[0], "255.255.255.0")
                w.ip = (ip, mask, w.ip[2], w.ip[3])
                w.c["dhcp"] = False
            elif k not in ("dhcp4", "gw4", "autoconf6", "dhcp6"):
                raise ValueError("unexpected key")
        return None
    k = args[0]
    if k == "addr4":
        return (a[0], a[1])
    if k == "gw4":
        return a[2]
    if k in ("dhcp4", "has_dhcp4"):
        return w.c.get("dhcp", True)
    if k == "addr6":
        return []
    if k in ("has_autoconf6", "autoconf6"):
        return False
    raise ValueError("unexpected key")
