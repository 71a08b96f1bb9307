# Wi-Fi supervisor: joins the saved networks, runs the setup access point when none
# is reachable, and falls back to the AP after a long outage. The module itself is
# the object the rest of the firmware reads (ctx.wifi): its globals are the state.
#
# Only what runs all the time lives here. The joining code (saved-network joins,
# credential tests, edits of the saved list) is perch.wifijoin, the captive DNS and
# redirect are perch.dns: each is loaded when needed and dropped after, so a joined
# board keeps neither in RAM, and a fresh one waiting in the portal only perch.dns.
#
# WLAN.scan() blocks its caller for the whole channel sweep (about 1-2 s), on the
# chip as on the virtual board. It runs in a _thread so the asyncio loop keeps
# serving: the ESP32 port releases the GIL inside esp_wifi_scan_start(), and the
# loop only polls for the result. Without _thread the scan runs inline.
import asyncio
import sys
import time

from micropython import const

from perch import hw, log
from perch.config import drop

if False:  # for the type checker only: MicroPython has no typing module
    from typing import Any

_log = log.Logger("wifi")

_SLICE_MS = const(20)  # how often the idle supervisor looks for a page's request
_TICK_MS = const(200)
_AP_RESCAN_MS = const(15_000)  # background scan cadence while the portal is up
_RETRY_MS = const(10_000)  # station down: retry the saved networks this often
_MAX_LIST = const(30)

_SECURITY = ("open", "wep", "wpa", "wpa2", "wpa/wpa2", "wpa2-enterprise", "wpa3",
             "wpa2/wpa3", "wapi", "owe")

# State: written by the supervisor task (with perch.wifijoin's help) and, for a scan or
# a join asked for by a page, by the page's handler.
ctx: "Any" = None
sta: "Any" = None
nets: list = []  # last scan: (rssi, ssid, channel, auth, hidden) per SSID, strongest first
scan_at = None
scanning = False  # a scan is asked for or running
_scan_out = None  # written by the scan thread, read by the loop
attempt = None  # {ssid, state, reason, ip} of the last credential test
job: "Any" = None  # credentials waiting to be tested: (ssid, password, hidden, priority)
ap_on = False
ap_off_at = None
link = None  # SSID of the joined network
down_since = None
retry_at = 0


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


# --- what the rest of the firmware reads ------------------------------------------


def saved():
    return ctx.cfg["wifi.networks"]


def mode():
    if ap_on:
        return "ap+sta" if link else "ap"
    return "sta"


def station_ip():
    return sta.ifconfig()[0] if link else None


def status():
    rssi = None
    if link:
        try:
            rssi = sta.status("rssi")
        except (OSError, ValueError):
            pass
    return {"ssid": link, "rssi": rssi, "ip": station_ip()}


def healthy():
    return link is not None or not saved()


def scan_doc():
    out = []
    for n in nets:
        a = n[3]
        out.append({"ssid": n[1], "rssi": n[0], "channel": n[2], "hidden": n[4],
                    "security": _SECURITY[a] if 0 <= a < len(_SECURITY) else "other"})
    age = None if scan_at is None else time.ticks_diff(time.ticks_ms(), scan_at) // 1000
    return {"networks": out, "scanning": scanning, "age_s": age}


def request_scan():
    global scanning
    scanning = True


# --- access point ------------------------------------------------------------------


def ap_start(why):
    global ap_on, ap_off_at
    ap_off_at = None
    if ap_on:
        return
    pw = ctx.cfg["ap.password"]
    ap = hw.wlan(hw.AP_IF)
    ap.active(True)
    if pw:
        ap.config(ssid=ctx.device_id, security=hw.AUTH_WPA2_PSK, key=pw)
    else:
        ap.config(ssid=ctx.device_id, security=hw.AUTH_OPEN)
    ap_on = True
    _log.info("access point up", ssid=ctx.device_id, secured=bool(pw), why=why)
    try:
        from perch import dns

        dns.start(ctx.cfg["dns.port"])
    except Exception as e:  # noqa: BLE001 - the portal still works by IP address
        _log.error("captive DNS failed to start", err=e)


def ap_stop():
    global ap_on
    if ap_on:
        d = sys.modules.get("perch.dns")
        if d:
            d.stop()
            drop("dns")
        hw.wlan(hw.AP_IF).active(False)
        ap_on = False
        _log.info("access point down")


# --- radio work: only the supervisor task calls these ------------------------------


def _scan_worker():
    global _scan_out
    try:
        out = sta.scan()
    except Exception as e:  # noqa: BLE001 - handed to the loop, which logs it
        out = e
    _scan_out = out


async def scan():
    global scanning, _scan_out, nets, scan_at
    scanning = True
    _scan_out = None
    try:
        import _thread

        _thread.start_new_thread(_scan_worker, ())
    except Exception as e:  # noqa: BLE001 - no thread support or no memory for one
        _log.warning("scan thread unavailable, scanning inline", err=e)
        _scan_worker()
    while _scan_out is None:
        await asyncio.sleep_ms(_SLICE_MS)
    out = _scan_out
    _scan_out = None
    scanning = False
    if isinstance(out, Exception):
        _log.warning("scan failed", err=out)
    else:
        nets = digest_scan(out)
        scan_at = time.ticks_ms()


# --- the supervisor task -----------------------------------------------------------


async def run():
    global retry_at, link, down_since, ap_off_at
    try:
        hw.set_hostname(ctx.device_id)
    except (OSError, ValueError):
        pass
    sta.active(True)
    retry_at = time.ticks_add(time.ticks_ms(), _RETRY_MS)
    why = "no saved network"
    if saved():
        why = "no saved network reachable"
        try:
            from perch import wifijoin

            if await wifijoin.join_saved():
                why = ""
        except Exception as e:  # noqa: BLE001 - e.g. no memory for the code: open the AP
            _log.exc(e, "joining the saved networks failed")
    if why:
        ap_start(why)
    while True:
        try:
            now = time.ticks_ms()
            scan_due = scanning or (ap_on and (
                scan_at is None or time.ticks_diff(now, scan_at) >= _AP_RESCAN_MS))
            if job is not None:
                from perch import wifijoin

                await wifijoin.run_job()
                scan_due = False
            elif sta.isconnected():
                if link is None:
                    # The driver rejoined by itself (the network came back).
                    link = sta.config("ssid")
                    down_since = None
                    _log.info("station connected", ssid=link, ip=station_ip())
                if ap_on:
                    if ap_off_at is None:
                        # Keep the AP a while after a join, so that the page shows the result.
                        ap_off_at = time.ticks_add(now, ctx.cfg["ap.linger_s"] * 1000)
                    elif time.ticks_diff(now, ap_off_at) >= 0:
                        ap_stop()
            else:
                if link is not None:
                    _log.warning("station link lost", ssid=link)
                    link = None
                    down_since = now
                    retry_at = time.ticks_add(now, _RETRY_MS)
                fallback = ctx.cfg["wifi.fallback_s"]
                if ap_on:
                    ap_off_at = None
                elif down_since is not None and time.ticks_diff(now, down_since) >= (
                        fallback * 1000):
                    ap_start("station down for %d s" % fallback)
                if saved() and time.ticks_diff(now, retry_at) >= 0:
                    from perch import wifijoin

                    await wifijoin.join_saved(True)  # scans first
                    retry_at = time.ticks_add(time.ticks_ms(), _RETRY_MS)
                    scan_due = False
            if scan_due:
                await scan()
        except Exception as e:  # noqa: BLE001 - the supervisor must survive
            _log.exc(e, "wifi supervisor step failed")
            await asyncio.sleep_ms(1000)
        if job is None and (link is not None or not saved()):
            drop("wifijoin")  # nothing to join: give its code back
        # A page's request (a scan, a join) cuts the wait short.
        t = _TICK_MS
        while t > 0 and not scanning and job is None:
            await asyncio.sleep_ms(_SLICE_MS)
            t -= _SLICE_MS


def setup(c):
    global ctx, sta, attempt
    ctx = c
    sta = hw.wlan(hw.STA_IF)
    attempt = {"ssid": None, "state": "idle", "reason": None, "ip": None}
    me = sys.modules[__name__]
    c.wifi = me
    c.status["wifi"] = status
    c.status["mode"] = mode
    c.health["wifi"] = healthy
    asyncio.create_task(run())
