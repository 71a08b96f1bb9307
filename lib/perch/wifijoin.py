# Joining networks and editing the saved list, with the portal's API calls that are not
# polled. The Wi-Fi supervisor loads this only while there is something to join (saved
# networks out of reach, a credential test from the portal), the portal's handlers and
# pages when they use it; perch.wifi drops it again once the station is up or nothing is
# saved. All state but the backoff stays in perch.wifi.
import asyncio
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
        try:
            _store(nets)
            lg.info("network saved", ssid=ssid, saved=len(nets))
        except config.ConfigError as e:
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


def request_join(ssid, password, hidden=False, priority=0):
    """Queue a credential test; the supervisor runs it while the AP stays up."""
    wifi.job = (ssid, password, hidden, priority)
    wifi.attempt = {"ssid": ssid, "state": "connecting", "reason": None, "ip": None}


def _store(nets):
    nets.sort(key=lambda n: -n["priority"])
    wifi.ctx.cfg.update({"wifi.networks": nets})


def _text(v, field, lo, hi):
    if not isinstance(v, str):
        raise config.ConfigError(field, "must be a string")
    n = len(v.encode())
    if n < lo or n > hi:
        raise config.ConfigError(field, "length must be %d to %d bytes" % (lo, hi))
    return v


def network_entry(doc, w, need_password=True):
    """Validated {ssid, password, hidden, priority} from a request document."""
    ssid = _text(doc.get("ssid"), "ssid", 1, 32)
    pw = doc.get("password")
    if pw is None and need_password:
        pw = ""
    if pw is not None:
        _text(pw, "password", 0, 64)
        if pw and len(pw.encode()) < 8:
            raise config.ConfigError("password", "WPA2 passwords are 8 to 64 characters")
    hidden = doc.get("hidden", False)
    if not isinstance(hidden, bool):
        raise config.ConfigError("hidden", "must be true or false")
    prio = doc.get("priority", 0)
    if not isinstance(prio, int) or isinstance(prio, bool) or not -100 <= prio <= 100:
        raise config.ConfigError("priority", "must be an integer from -100 to 100")
    known = [n["ssid"] for n in w.saved()]
    if ssid not in known and len(known) >= config.SCHEMA["wifi.networks"][3]:
        raise config.ConfigError("ssid", "%d networks saved already: forget one first"
                                 % len(known))
    return {"ssid": ssid, "password": pw, "hidden": hidden, "priority": prio}


def set_meta(w, entry):
    """Change priority/hidden of a saved network without testing it again."""
    nets = []
    for n in w.saved():
        if n["ssid"] == entry["ssid"]:
            n = dict(n)
            n["priority"] = entry["priority"]
            n["hidden"] = entry["hidden"]
        nets.append(n)
    _store(nets)


def saved_public(w):
    return [{"ssid": n["ssid"], "hidden": n["hidden"], "priority": n["priority"]}
            for n in w.saved()]


def forget(ssid):
    keep = [n for n in wifi.saved() if n["ssid"] != ssid]
    if len(keep) == len(wifi.saved()):
        return False
    wifi.ctx.cfg.update({"wifi.networks": keep})
    wifi._log.info("network forgotten", ssid=ssid)
    return True


def factory_reset(ctx):
    wifi._log.warning("factory reset")
    ctx.cfg.reset()
    ctx.reboot(500)


def api(req, page, sub):
    """The rest of the portal's API (perch.portal answers the polled calls itself):
    GET /api/wifi, POST /api/wifi (add and test, or edit a saved network),
    DELETE /api/wifi/<ssid>, POST /api/factory-reset."""
    from perch.web import body_json, json_error

    w = wifi
    m = req.method
    if page == "factory-reset" and m == "POST" and not sub:
        factory_reset(w.ctx)
        return {"reset": True, "rebooting": True}, 202
    if page == "wifi":
        if sub:
            if m == "DELETE":
                from microdot.microdot import urldecode

                try:
                    ssid = urldecode(sub)
                except (ValueError, UnicodeError):
                    return json_error(400, "ssid: bad %-escape in the URL")
                if not forget(ssid):
                    return json_error(404, "ssid: no saved network named %s" % ssid)
                return {"networks": saved_public(w)}
        elif m == "POST":
            try:
                doc = body_json(req)
                if "password" not in doc and any(
                        n["ssid"] == doc.get("ssid") for n in w.saved()):
                    set_meta(w, network_entry(doc, w, need_password=False))
                    return {"networks": saved_public(w), "attempt": w.attempt}
                n = network_entry(doc, w)
            except config.ConfigError as e:
                return json_error(400, str(e), field=e.field)
            except ValueError as e:
                return json_error(400, str(e))
            request_join(n["ssid"], n["password"], n["hidden"], n["priority"])
            return {"networks": saved_public(w), "attempt": w.attempt}, 202
        elif m != "DELETE":
            return {"networks": saved_public(w), "attempt": w.attempt, "mode": w.mode()}
    return json_error(405, "method not allowed: %s %s" % (m, req.path))
