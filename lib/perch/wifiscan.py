# Scans for the Wi-Fi supervisor and their digest for the pages, loaded for each use and
# dropped after (perch.wifi's __getattr__ and config.lazy; the supervisor keeps it loaded
# while its scan runs, so that a page polling the results meanwhile shares it). All state
# stays in perch.wifi; this module has none.
#
# WLAN.scan() blocks its caller for the whole channel sweep (about 1-2 s), on the chip as on
# the virtual board. It runs in a _thread so the asyncio loop keeps serving: the ESP32 port
# releases the GIL inside esp_wifi_scan_start(), and the loop only polls for the result.
# Without _thread the scan runs inline.
import asyncio
import time

from micropython import const

from perch import wifi

_SLICE_MS = const(20)  # as in perch.wifi
_MAX_LIST = const(30)


def digest_scan(raw):
    """Scan tuples -> [(rssi, ssid, channel, auth, hidden)], one per SSID (its strongest
    BSS), strongest first. Nameless BSSs are left out: the manual SSID field joins them."""
    best: dict = {}
    for t in raw:
        try:
            name = bytes(t[0]).decode()
        except UnicodeError:
            continue
        if name and (name not in best or t[3] > best[name][0]):
            best[name] = (t[3], name, t[2], t[4], bool(t[5]))
    return sorted(best.values(), reverse=True)[:_MAX_LIST]


def scan_doc():
    sec = ("open", "wep", "wpa", "wpa2", "wpa/wpa2", "wpa2-enterprise", "wpa3", "wpa2/wpa3",
           "wapi", "owe")
    out = []
    for n in wifi.nets:
        a = n[3]
        out.append({"ssid": n[1], "rssi": n[0], "channel": n[2], "hidden": n[4],
                    "security": sec[a] if 0 <= a < len(sec) else "other"})
    at = wifi.scan_at
    age = None if at is None else time.ticks_diff(time.ticks_ms(), at) // 1000
    return {"networks": out, "scanning": wifi.scanning, "age_s": age}


def _scan_worker():
    try:
        out = wifi.sta.scan()
    except Exception as e:  # noqa: BLE001 - handed to the loop, which logs it
        out = e
    wifi._scan_out = out


async def scan():
    w = wifi
    w.scanning = True
    w._scan_out = None
    try:
        import _thread

        _thread.start_new_thread(_scan_worker, ())
    except Exception as e:  # noqa: BLE001 - no thread support or no memory for one
        w._log.warning("scan thread unavailable, scanning inline", err=e)
        _scan_worker()
    while w._scan_out is None:
        await asyncio.sleep_ms(_SLICE_MS)
    out = w._scan_out
    w._scan_out = None
    w.scanning = False
    if isinstance(out, Exception):
        w._log.warning("scan failed", err=out)
    else:
        w.nets = digest_scan(out)
        w.scan_at = time.ticks_ms()
