# Editing the saved networks and queueing a credential test (which the supervisor runs with
# perch.wificonnect), with the portal's Wi-Fi API calls that are not polled. Loaded by the
# portal's handlers and pages for one request and dropped after it.
from micropython import const

from perch import config, wifi

# The most networks wifi.networks holds (its maximum in perch.schema, which tests/test_wifi.py
# checks): reading it there would load the whole schema, ~11 KB, for each join request.
_MAX_NETS = const(8)


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
    if ssid not in known and len(known) >= _MAX_NETS:
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
