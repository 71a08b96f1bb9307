# The Wi-Fi supervisor's occasional radio work, loaded for each use and dropped after
# (perch.wifi's __getattr__ and config.lazy): the setup access point up and down, scans and
# their digest for the pages, and the supervisor's first steps at boot. All state stays in
# perch.wifi; this module has none, so a fresh copy on each load changes nothing.
import asyncio
import sys
import time

from micropython import const

from perch import hw, wifi
from perch.config import drop

_SLICE_MS = const(20)  # as in perch.wifi
_RETRY_MS = const(10_000)  # as in perch.wifi
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


# --- access point ------------------------------------------------------------------


def ap_start(why):
    w = wifi
    w.ap_off_at = None
    if w.ap_on:
        return
    ctx = w.ctx
    pw = ctx.cfg["ap.password"]
    ap = hw.wlan(hw.AP_IF)
    ap.active(True)
    if pw:
        ap.config(ssid=ctx.device_id, security=hw.AUTH_WPA2_PSK, key=pw)
    else:
        ap.config(ssid=ctx.device_id, security=hw.AUTH_OPEN)
    w.ap_on = True
    w._log.info("access point up", ssid=ctx.device_id, secured=bool(pw), why=why)
    try:
        from perch import dns

        dns.start(ctx.cfg["dns.port"])
    except Exception as e:  # noqa: BLE001 - the portal still works by IP address
        w._log.error("captive DNS failed to start", err=e)


def ap_stop():
    w = wifi
    if w.ap_on:
        d = sys.modules.get("perch.dns")
        if d:
            d.stop()
            drop("dns")
        hw.wlan(hw.AP_IF).active(False)
        w.ap_on = False
        w._log.info("access point down")


# --- scans: only the supervisor task runs them ---------------------------------------
# WLAN.scan() blocks its caller for the whole channel sweep (about 1-2 s), on the chip as on
# the virtual board. It runs in a _thread so the asyncio loop keeps serving: the ESP32 port
# releases the GIL inside esp_wifi_scan_start(), and the loop only polls for the result.
# Without _thread the scan runs inline.


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


async def boot():
    """The supervisor's first steps: the station up, the saved networks tried, else the AP."""
    w = wifi
    ctx = w.ctx
    try:
        hw.set_hostname(ctx.device_id)
    except (OSError, ValueError):
        pass
    w.sta.active(True)
    w.retry_at = time.ticks_add(time.ticks_ms(), _RETRY_MS)
    why = "no saved network"
    if w.saved():
        why = "no saved network reachable"
        try:
            from perch import wifijoin

            if await wifijoin.join_saved():
                why = ""
        except Exception as e:  # noqa: BLE001 - e.g. no memory for the code: open the AP
            w._log.exc(e, "joining the saved networks failed")
    if why:
        ap_start(why)
