# The Wi-Fi supervisor's rare radio work, loaded for each use and dropped after (perch.wifi's
# __getattr__ and config.lazy): the supervisor's first steps at boot and the setup access
# point up and down. All state stays in perch.wifi; this module has none.
import sys
import time

from micropython import const

from perch import hw, wifi
from perch.config import drop

_RETRY_MS = const(10_000)  # as in perch.wifi
# network.AP_IF and AUTH_* of the ESP32 port (Final in its stubs; tests/test_wifi.py checks them)
_AP_IF = const(1)
_AUTH_OPEN = const(0)
_AUTH_WPA2_PSK = const(3)


# --- access point ------------------------------------------------------------------


def ap_start(why):
    w = wifi
    w.ap_off_at = None
    if w.ap_on:
        return
    ctx = w.ctx
    pw = ctx.cfg["ap.password"]
    ap = hw.wlan(_AP_IF)
    ap.active(True)
    if pw:
        ap.config(ssid=ctx.device_id, security=_AUTH_WPA2_PSK, key=pw)
    else:
        ap.config(ssid=ctx.device_id, security=_AUTH_OPEN)
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
        hw.wlan(_AP_IF).active(False)
        w.ap_on = False
        w._log.info("access point down")


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
            from perch import wificonnect

            if await wificonnect.join_saved():
                why = ""
        except Exception as e:  # noqa: BLE001 - e.g. no memory for the code: open the AP
            w._log.exc(e, "joining the saved networks failed")
    if why:
        ap_start(why)
