# The Wi-Fi supervisor's joins: the saved networks in order (with a backoff for those that
# failed lately), and the credential tests the portal queues (perch.wifijoin.request_join).
# Loaded by the supervisor only while there is something to join, and dropped once the
# station is up or nothing is saved. All state but the backoff stays in perch.wifi.
import asyncio
import gc
import time

from micropython import const

from perch import config, wifi

# network.STAT_* of the ESP32 port (Final in its stubs; tests/test_wifi.py checks them)
_STAT_GOT_IP = const(1010)
_STAT_WRONG_PASSWORD = const(202)
_STAT_NO_AP_FOUND = const(201)
_STAT_HANDSHAKE_TIMEOUT = const(204)
_STAT_ASSOC_FAIL = const(203)
_STAT_BEACON_TIMEOUT = const(200)
_POLL_MS = const(100)
_RETRY_MS = const(10_000)  # as in perch.wifi
_BACKOFF_MAX_MS = const(120_000)

# ssid -> (failures, ticks of the last failure). Dropped with the module once the station is
# up, which is when it stops mattering.
_backoff: dict = {}


def join_order(saved, visible):
    """Saved networks to try: visible ones by priority then signal, then hidden ones (a
    scan cannot see them). Saved, visible-capable networks missing from the scan are
    skipped. visible holds perch.wifi scan tuples (rssi, ssid, ...)."""
    rssi = {n[1]: n[0] for n in visible}
    seen = [n for n in saved if n["ssid"] in rssi]
    seen.sort(key=lambda n: (-n.get("priority", 0), -rssi[n["ssid"]]))
    hidden = [n for n in saved if n["ssid"] not in rssi and n.get("hidden")]
    hidden.sort(key=lambda n: -n.get("priority", 0))
    return seen + hidden


async def connect(ssid, password):
    """None on success, else a reason: wrong password, SSID not found, timeout, ..."""
    sta = wifi.sta
    try:
        sta.disconnect()
        sta.connect(ssid, password)
    except OSError as e:
        return "radio error: %s" % e
    t0 = time.ticks_ms()
    limit = wifi.ctx.cfg["wifi.timeout_s"] * 1000
    while True:
        await asyncio.sleep_ms(_POLL_MS)
        st = sta.status()
        if st == _STAT_GOT_IP:
            wifi.link = ssid
            wifi.down_since = None
            wifi._log.info("station connected", ssid=ssid, ip=wifi.station_ip())
            return None
        if st == _STAT_WRONG_PASSWORD or st == _STAT_HANDSHAKE_TIMEOUT:
            why = "wrong password"
        elif st == _STAT_NO_AP_FOUND:
            why = "SSID not found"
        elif st == _STAT_ASSOC_FAIL:
            why = "association refused"
        elif st == _STAT_BEACON_TIMEOUT:
            why = "signal lost"
        elif time.ticks_diff(time.ticks_ms(), t0) > limit:
            why = "timeout"
        else:
            continue
        sta.disconnect()
        return why


async def join_saved(background=False):
    """Scan, then try the saved networks in join_order; in the background, a network that
    failed lately waits out its backoff."""
    saved = wifi.saved()
    if not saved:
        return False
    await wifi.scan()
    now = time.ticks_ms()
    for n in join_order(saved, wifi.nets):
        if wifi.job is not None:
            return False  # the user is waiting: their network first
        ssid = n["ssid"]
        fails, at = _backoff.get(ssid, (0, 0))
        if background and fails and time.ticks_diff(now, at) < min(
                _RETRY_MS << min(fails, 6), _BACKOFF_MAX_MS):
            continue
        why = await connect(ssid, n["password"])
        if why is None:
            return True
        _backoff[ssid] = (fails + 1, time.ticks_ms())
        wifi._log.warning("join failed", ssid=ssid, reason=why)
    return False


async def run_job():
    """Test the credentials of wifi.job while the AP stays up; save them if they work."""
    ssid, pw, hidden, prio = wifi.job
    wifi.job = None
    was = wifi.link
    wifi.link = None
    lg = wifi._log
    lg.info("testing credentials", ssid=ssid, ap=wifi.ap_on)
    why = await connect(ssid, pw)
    if wifi.job is not None:
        return  # superseded by a newer request while this one ran
    if why is None:
        nets = [n for n in wifi.saved() if n["ssid"] != ssid]
        nets.append({"ssid": ssid, "password": pw, "hidden": hidden, "priority": prio})
        nets.sort(key=lambda n: -n["priority"])
        # The save loads perch.schema (~11 KB of code) beside the AP's pages and DNS: on a
        # 160 KB heap it needs a collected heap, and once in a while a second try after the
        # first one's leftovers are gone.
        try:
            try:
                gc.collect()
                wifi.ctx.cfg.update({"wifi.networks": nets})
            except MemoryError:
                gc.collect()
                wifi.ctx.cfg.update({"wifi.networks": nets})
            lg.info("network saved", ssid=ssid, saved=len(nets))
        except (config.ConfigError, MemoryError) as e:
            lg.error("network not saved", err=e)
        wifi.attempt = {"ssid": ssid, "state": "connected", "reason": None,
                        "ip": wifi.station_ip()}
        if wifi.ap_on:
            wifi.ap_off_at = None  # the supervisor starts the AP's linger time
        return
    wifi.attempt = {"ssid": ssid, "state": "failed", "reason": why, "ip": None}
    lg.warning("credentials rejected", ssid=ssid, reason=why)
    if (was or not wifi.ap_on) and not await join_saved():
        wifi.ap_start("saved networks unreachable")
