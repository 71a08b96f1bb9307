# Wi-Fi supervisor: joins the saved networks, runs the setup access point when none
# is reachable, and falls back to the AP after a long outage. The module itself is
# the object the rest of the firmware reads (ctx.wifi): its globals are the state.
#
# Only what runs all the time lives here. The rest is loaded when needed and dropped after,
# so that a joined board keeps none of it in RAM:
# - perch.wifiradio: the first steps at boot, the access point up and down;
# - perch.wifiscan: scans and their digest for the pages;
#   (both reached as wifi.<name> through __getattr__ below)
# - perch.wificonnect: joins (saved networks, credential tests), while there is one to do;
# - perch.wifijoin: edits of the saved list and the portal's requests, per request;
# - perch.dns: the captive DNS and redirect, while the AP is up (but not during an install).
import asyncio
import sys
import time

from micropython import const

from perch import hw, log
from perch.config import drop, lazy

if False:  # for the type checker only: MicroPython has no typing module
    from typing import Any

_log = log.Logger("wifi")

_SLICE_MS = const(20)  # how often the idle supervisor looks for a page's request
_TICK_MS = const(200)
_AP_RESCAN_MS = const(15_000)  # background scan cadence while the portal is up
_RETRY_MS = const(10_000)  # station down: retry the saved networks this often

# State: written by the supervisor task (with the help of the modules named above)
# and, for a scan or a join asked for by a page, by the page's handler.
ctx: "Any" = None
sta: "Any" = None
nets: list = []  # last scan: (rssi, ssid, channel, auth, hidden) per SSID, strongest first
scan_at = None
scanning = False  # a scan is asked for or running
_scan_out = None  # written by the scan thread, read by the loop
attempt: "Any" = None  # {ssid, state, reason, ip} of the last credential test
job: "Any" = None  # credentials waiting to be tested: (ssid, password, hidden, priority)
ap_on = False
ap_off_at = None
link = None  # SSID of the joined network
down_since = None
retry_at = 0


def __getattr__(name):
    # ap_start(why), ap_stop(): perch.wifiradio's; scan(), scan_doc(),
    # digest_scan(raw): perch.wifiscan's. Loaded for this use unless loaded already.
    return getattr(lazy("wifiradio" if name[:3] == "ap_" else "wifiscan"), name)


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


def installing():
    """Whether an OTA install runs (it takes all the RAM there is). The OTA feature may have
    failed to load: then none does."""
    o = getattr(ctx, "ota", None)
    if o is None:
        return False
    from perch.ota import BUSY  # loaded: it made ctx.ota

    return o.state in BUSY


def request_scan():
    global scanning
    scanning = True


# --- the supervisor task -----------------------------------------------------------


async def run():
    global link, down_since, ap_off_at, retry_at
    # perch.wificonnect and perch.wifiscan are imported (kept in sys.modules while they run)
    # by __import__, not `from perch import x`: a module bound to a local of this coroutine
    # would stay in its frame for good, and all its code with it after drop() (3.8 KB).
    await lazy("wifiradio").boot()
    while True:
        if job is None and healthy():
            drop("wificonnect")  # nothing to join: give its code back
        try:
            now = time.ticks_ms()
            # an install takes all the RAM there is: no background scans, no captive DNS
            idle = not installing()
            scan_due = scanning or (ap_on and idle and (
                scan_at is None or time.ticks_diff(now, scan_at) >= _AP_RESCAN_MS))
            if job is not None:
                await __import__("perch.wificonnect", None, None, ("run_job",)).run_job()
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
                        lazy("wifiradio").ap_stop()
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
                    lazy("wifiradio").ap_start("station down for %d s" % fallback)
                if saved() and time.ticks_diff(now, retry_at) >= 0:
                    # scans first
                    await __import__("perch.wificonnect", None, None, ("join_saved",)).join_saved(
                        True)
                    retry_at = time.ticks_add(time.ticks_ms(), _RETRY_MS)
                    scan_due = False
            if ap_on and idle and "perch.dns" not in sys.modules:
                # the captive DNS (perch.dns) gave its RAM to an install that failed
                __import__("perch.dns", None, None, ("start",)).start(ctx.cfg["dns.port"])
            if scan_due:
                # kept loaded while it runs: pages poll meanwhile
                await __import__("perch.wifiscan", None, None, ("scan",)).scan()
                drop("wifiscan")
        except Exception as e:  # noqa: BLE001 - the supervisor must survive
            _log.exc(e, "wifi supervisor step failed")
            await asyncio.sleep_ms(1000)
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
    c.wifi = sys.modules[__name__]
    c.status["wifi"] = status
    c.status["mode"] = mode
    c.health["wifi"] = healthy
    asyncio.create_task(run())
