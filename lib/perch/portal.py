# Captive portal: the redirect that makes phones pop up the sign-in sheet, the
# setup wizard on "/", the Wi-Fi and settings pages, and the Wi-Fi JSON API.
import json

from microdot import Response

from perch import auth, config, log, pages, setup_pages, wifi
from perch.web import json_error

_log = log.Logger("portal")

AP_NET = "192.168.4."


def peer_ip(peer):
    """Client address from a stream's peername: a tuple on the ESP32, a raw
    sockaddr (family, port, IPv4) on the Unix port."""
    if isinstance(peer, tuple):
        return peer[0]
    if isinstance(peer, (bytes, bytearray)) and len(peer) >= 8:
        return "%d.%d.%d.%d" % (peer[4], peer[5], peer[6], peer[7])
    return ""


def device_address(ctx, w, peer):
    """The address this client reaches us on: loopback for local clients, the
    AP address on the setup network, else the station address."""
    ip = peer_ip(peer)
    if ip.startswith("127."):
        host = "127.0.0.1"
    elif ip.startswith(AP_NET) or not w.link:
        host = wifi.AP_IP
    else:
        host = w.station_ip() or wifi.AP_IP
    port = ctx.cfg["http.port"]
    return host if port == 80 else "%s:%d" % (host, port)


def captive(ctx, w):
    def redirect(host, peer):
        # Only while the setup AP is up; a joined device serves every Host normally.
        if not w.ap_on or auth.own_host(ctx, host):
            return None
        return "http://%s/" % device_address(ctx, w, peer)

    return redirect


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
    nets.sort(key=lambda n: -n["priority"])
    w.ctx.cfg.update({"wifi.networks": nets})


def saved_public(w):
    return [{"ssid": n["ssid"], "hidden": n["hidden"], "priority": n["priority"]}
            for n in w.saved()]


def _form(req):
    # Invalid UTF-8 or %-escapes in a form body are the client's fault: 400, not 500.
    try:
        return req.form or {}
    except (ValueError, UnicodeError):
        raise config.ConfigError("form", "body is not valid UTF-8 form data")


def split_mqtt_url(url):
    """'mqtt://user:pw@host' -> ('mqtt://host', 'user', password set?)."""
    if not url:
        return "", "", False
    scheme, _, rest = url.partition("://")
    cred, at, host = rest.rpartition("@")
    if not at:
        return url, "", False
    user, colon, pw = cred.rpartition(":")
    if not colon:
        return scheme + "://" + host, cred, False
    return scheme + "://" + host, user, bool(pw)


def join_mqtt_url(old, url, user, pw, clear):
    """Compose mqtt.url from the settings form; a blank password keeps the old one."""
    url = url.strip()
    if not url:
        return None
    scheme, sep, rest = url.partition("://")
    if not sep or "@" in rest:
        return url  # credentials typed into the URL itself win
    if not pw and not clear and old:
        _, _, orest = old.partition("://")
        ocred, at, _ = orest.rpartition("@")
        if at and ":" in ocred and ocred.rpartition(":")[0] == user:
            pw = ocred.rpartition(":")[2]
    if not user:
        return url
    if pw:
        return "%s://%s:%s@%s" % (scheme, user, pw, rest)
    return "%s://%s%s@%s" % (scheme, user, ":" if ":" in user else "", rest)


def setup(ctx):
    w = wifi.get()
    app = ctx.web
    guard = getattr(ctx, "guard", None)
    if guard is not None:
        guard.redirect = captive(ctx, w)

    def admin_set():
        return bool(ctx.cfg["admin.password"])

    def wifi_html(note="", chosen="", status=200):
        doc = w.scan_doc()
        r = pages.html(setup_pages.wifi_page(ctx, doc, saved_public(w), note, chosen), status)
        if doc["scanning"] and not doc["networks"]:
            r.headers["Refresh"] = "2"
        return r

    @app.before_request
    async def wizard(req):
        # "/" is the setup wizard until a network is saved, the status page after.
        if req.path == "/" and req.method in ("GET", "HEAD") and not w.saved():
            if w.scan_at is None and not w.scanning:
                w.request_scan()
            doc = w.scan_doc()
            r = pages.html(setup_pages.wizard_page(ctx, doc))
            if doc["scanning"] and not doc["networks"]:
                r.headers["Refresh"] = "2"
            return r
        return None

    @app.get("/wifi")
    async def wifi_get(req):
        if w.scan_at is None and not w.scanning:
            w.request_scan()
        return wifi_html()

    @app.post("/wifi/scan")
    async def wifi_scan_form(req):
        w.request_scan()
        return Response.redirect("/wifi", 303)

    @app.post("/wifi")
    async def wifi_post(req):
        try:
            f = _form(req)
            manual = f.get("manual") or ""
            ssid = manual if manual else f.get("ssid") or ""
            if not ssid:
                raise config.ConfigError("ssid", "pick a network or type its name")
            n = network_entry({"ssid": ssid, "password": f.get("password") or "",
                               "hidden": bool(manual)}, w)
        except config.ConfigError as e:
            return wifi_html(setup_pages.error_note(str(e)), status=400)
        w.request_join(n["ssid"], n["password"], n["hidden"], n["priority"])
        return Response.redirect("/wifi/result", 303)

    @app.get("/wifi/result")
    async def wifi_result(req):
        a = w.attempt
        if a["state"] == "idle":
            return Response.redirect("/wifi", 303)
        if a["state"] == "failed":
            note = setup_pages.error_note("Could not join %s: %s." % (a["ssid"], a["reason"]))
            return wifi_html(note, a["ssid"])
        html = setup_pages.result_page(ctx, a, w.ap_on, ctx.cfg["ap.linger_s"], admin_set(),
                                       ctx.cfg["http.port"])
        r = pages.html(html)
        if a["state"] == "connecting":
            r.headers["Refresh"] = "1"
        return r

    @app.post("/wifi/saved")
    async def wifi_saved_form(req):
        try:
            f = _form(req)
            prio = int(f.get("priority") or "0")
            cur = [n for n in w.saved() if n["ssid"] == f.get("ssid")]
            if not cur:
                raise config.ConfigError("ssid", "not a saved network")
            e = network_entry({"ssid": cur[0]["ssid"], "hidden": cur[0]["hidden"],
                               "priority": prio}, w, need_password=False)
            set_meta(w, e)
        except ValueError as e:
            return wifi_html(setup_pages.error_note(str(e)), status=400)
        return Response.redirect("/wifi", 303)

    @app.post("/wifi/forget")
    async def wifi_forget_form(req):
        try:
            w.forget(_form(req).get("ssid") or "")
        except config.ConfigError as e:
            return wifi_html(setup_pages.error_note(str(e)), status=400)
        return Response.redirect("/wifi", 303)

    # --- JSON API ---------------------------------------------------------------

    @app.get("/api/wifi/networks")
    async def api_networks(req):
        return w.scan_doc()

    @app.post("/api/wifi/scan")
    async def api_scan(req):
        w.request_scan()
        return {"scanning": True}, 202

    @app.get("/api/wifi")
    async def api_wifi(req):
        return {"networks": saved_public(w), "attempt": w.attempt, "mode": w.mode()}

    @app.post("/api/wifi")
    async def api_wifi_add(req):
        try:
            doc = json.loads(req.body or b"{}")
            if not isinstance(doc, dict):
                raise ValueError("body must be a JSON object")
            known = any(n["ssid"] == doc.get("ssid") for n in w.saved())
            if known and "password" not in doc:
                set_meta(w, network_entry(doc, w, need_password=False))
                return {"networks": saved_public(w), "attempt": w.attempt}
            n = network_entry(doc, w)
        except config.ConfigError as e:
            return json_error(400, str(e), field=e.field)
        except ValueError as e:
            return json_error(400, "body is not a JSON object: %s" % e)
        w.request_join(n["ssid"], n["password"], n["hidden"], n["priority"])
        return {"networks": saved_public(w), "attempt": w.attempt}, 202

    @app.delete("/api/wifi/<path:ssid>")
    async def api_wifi_delete(req, ssid):
        try:
            from microdot.microdot import urldecode

            ssid = urldecode(ssid)
        except (ValueError, UnicodeError):
            return json_error(400, "ssid: bad %-escape in the URL")
        if not w.forget(ssid):
            return json_error(404, "ssid: no saved network named %s" % ssid)
        return {"networks": saved_public(w)}

    @app.post("/api/factory-reset")
    async def api_factory_reset(req):
        _factory_reset(ctx)
        return {"reset": True, "rebooting": True}, 202

    # --- settings ---------------------------------------------------------------

    def settings_html(note="", status=200):
        mq = split_mqtt_url(ctx.cfg["mqtt.url"])
        return pages.html(setup_pages.settings_page(ctx, mq, note), status)

    @app.get("/settings")
    async def settings_get(req):
        return settings_html()

    @app.post("/settings")
    async def settings_post(req):
        try:
            f = _form(req)
            try:
                interval = int(f.get("interval") or "0")
            except ValueError:
                raise config.ConfigError("telemetry.interval_s", "must be a whole number")
            ch = {
                "name": (f.get("name") or "").strip() or None,
                "mqtt.url": join_mqtt_url(ctx.cfg["mqtt.url"], f.get("mqtt_url") or "",
                                          (f.get("mqtt_user") or "").strip(),
                                          f.get("mqtt_password") or "",
                                          bool(f.get("mqtt_password_clear"))),
                "telemetry.interval_s": interval,
                "ota.server": (f.get("ota_server") or "").strip() or None,
            }
            if f.get("ap_password"):
                ch["ap.password"] = f.get("ap_password")
            ctx.cfg.update(ch)
        except config.ConfigError as e:
            return settings_html(setup_pages.error_note(str(e)), 400)
        _log.info("settings saved")
        return settings_html('<p class="ok" role="status">Saved.</p>')

    @app.post("/settings/admin")
    async def settings_admin(req):
        try:
            f = _form(req)
            pw = f.get("password") or ""
            if pw != (f.get("password2") or ""):
                raise config.ConfigError("admin.password", "the two passwords differ")
            config.check("admin.password", pw)
            ctx.cfg.update({"admin.password": await auth.hash_password(pw)})
        except config.ConfigError as e:
            return settings_html(setup_pages.error_note(str(e)), 400)
        ctx.auth.guard.clear()
        _log.info("admin password set")
        # The one who set it is logged in; everyone else must log in again.
        r = Response.redirect("/settings", 303)
        r.headers["Set-Cookie"] = ["%s=%s; Path=/; HttpOnly; SameSite=Strict"
                                   % (auth.COOKIE, ctx.auth.guard.new_session())]
        return r

    @app.post("/settings/reset")
    async def settings_reset(req):
        try:
            if not _form(req).get("confirm"):
                raise config.ConfigError("confirm", "tick the box to confirm")
        except config.ConfigError as e:
            return settings_html(setup_pages.error_note(str(e)), 400)
        _factory_reset(ctx)
        body = ("<section><h2>Factory reset</h2><p>Settings erased. The device restarts "
                "with its setup network <b>%s</b>.</p></section>" % pages.esc(ctx.device_id))
        return pages.html(pages.shell(ctx, "Factory reset", body))


def _factory_reset(ctx):
    _log.warning("factory reset")
    ctx.cfg.reset()
    ctx.reboot(500)
