# Handlers of the HTML pages of setup: wizard, Wi-Fi forms, join result, settings, login.
#
# Loaded for one request at a time by auth.view() and dropped afterwards: pages are
# rare, and their code and strings would otherwise sit in RAM for the board's lifetime.
from microdot import Response

from perch import auth, config, log, pages, setup_pages
from perch.wifijoin import forget, network_entry, request_join, saved_public, set_meta

_log = log.Logger("portal")


async def dispatch(ctx, req, page, action):
    if req.method == "HEAD":
        method = "get"
    else:
        method = req.method.lower()
    name = "%s_%s%s" % (page, action + "_" if action else "", method)
    fn = globals().get(name) if action.isalpha() or not action else None
    if fn is None:
        return pages.html(pages.shell(ctx, "Not found", '<section><p class="err">No such '
                                      "page.</p></section>"), 404)
    return await fn(ctx, req)


async def wifi_scan_post(ctx, req):
    ctx.wifi.request_scan()
    return Response.redirect("/wifi", 303)


def _form(req):
    # Invalid UTF-8 or %-escapes in a form body are the client's fault: 400, not 500.
    try:
        return req.form or {}
    except (ValueError, UnicodeError):
        raise config.ConfigError("form", "body is not valid UTF-8 form data")


def _scan_doc(w):
    if w.scan_at is None and not w.scanning:
        w.request_scan()
    return w.scan_doc()


def _refreshing(r, doc):
    # No-JS clients reload while the first scan runs; scripts poll instead.
    if doc["scanning"] and not doc["networks"]:
        r.headers["Refresh"] = "2"
    return r


def wifi_html(ctx, note="", chosen="", status=200):
    w = ctx.wifi
    doc = _scan_doc(w)
    html = setup_pages.wifi_page(ctx, doc, saved_public(w), note, chosen, w.status())
    return _refreshing(pages.html(html, status), doc)


async def wizard(ctx, req):
    doc = _scan_doc(ctx.wifi)
    return _refreshing(pages.html(setup_pages.wizard_page(ctx, doc)), doc)


async def wifi_get(ctx, req):
    return wifi_html(ctx)


async def wifi_post(ctx, req):
    w = ctx.wifi
    try:
        f = _form(req)
        manual = f.get("manual") or ""
        ssid = manual if manual else f.get("ssid") or ""
        if not ssid:
            raise config.ConfigError("ssid", "pick a network or type its name")
        n = network_entry({"ssid": ssid, "password": f.get("password") or "",
                           "hidden": bool(manual)}, w)
    except config.ConfigError as e:
        return wifi_html(ctx, setup_pages.error_note(str(e)), status=400)
    request_join(n["ssid"], n["password"], n["hidden"], n["priority"])
    return Response.redirect("/wifi/result", 303)


async def wifi_result_get(ctx, req):
    w = ctx.wifi
    a = w.attempt
    if a["state"] == "idle":
        return Response.redirect("/wifi", 303)
    if a["state"] == "failed":
        note = setup_pages.error_note("Could not join %s: %s." % (a["ssid"], a["reason"]))
        return wifi_html(ctx, note, a["ssid"])
    html = setup_pages.result_page(ctx, a, w.ap_on, ctx.cfg["ap.linger_s"],
                                   bool(ctx.cfg["admin.password"]), ctx.cfg["http.port"])
    r = pages.html(html)
    if a["state"] == "connecting":
        r.headers["Refresh"] = "1"
    return r


async def wifi_saved_post(ctx, req):
    w = ctx.wifi
    try:
        f = _form(req)
        try:
            prio = int(f.get("priority") or "0")
        except ValueError:
            raise config.ConfigError("priority", "must be a whole number")
        cur = [n for n in w.saved() if n["ssid"] == f.get("ssid")]
        if not cur:
            raise config.ConfigError("ssid", "not a saved network")
        set_meta(w, network_entry({"ssid": cur[0]["ssid"], "hidden": cur[0]["hidden"],
                                   "priority": prio}, w, need_password=False))
    except config.ConfigError as e:
        return wifi_html(ctx, setup_pages.error_note(str(e)), status=400)
    return Response.redirect("/wifi", 303)


async def wifi_forget_post(ctx, req):
    try:
        forget(_form(req).get("ssid") or "")
    except config.ConfigError as e:
        return wifi_html(ctx, setup_pages.error_note(str(e)), status=400)
    return Response.redirect("/wifi", 303)


# --- settings -------------------------------------------------------------------


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
    # "vhost:user" with no password needs the trailing colon to stay unambiguous.
    return "%s://%s%s@%s" % (scheme, user, ":" if ":" in user else "", rest)


def settings_html(ctx, note="", status=200):
    mq = split_mqtt_url(ctx.cfg["mqtt.url"])
    return pages.html(setup_pages.settings_page(ctx, mq, note), status)


async def settings_get(ctx, req):
    if req.args.get("done") == "admin":
        return settings_html(ctx, '<p class="ok" role="status">Admin password set. This '
                             "browser stays logged in; others must log in.</p>")
    return settings_html(ctx)


async def settings_post(ctx, req):
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
        return settings_html(ctx, setup_pages.error_note(str(e)), 400)
    _log.info("settings saved")
    return settings_html(ctx, '<p class="ok" role="status">Saved.</p>')


def _session_cookie(r, tok):
    r.headers["Set-Cookie"] = ["%s=%s; Path=/; HttpOnly; SameSite=Strict" % (auth.COOKIE, tok)]
    return r


async def settings_admin_post(ctx, req):
    try:
        f = _form(req)
        pw = f.get("password") or ""
        if pw != (f.get("password2") or ""):
            raise config.ConfigError("admin.password", "the two passwords differ")
        config.check("admin.password", pw)
        ctx.cfg.update({"admin.password": await auth.hash_password(pw)})
    except config.ConfigError as e:
        return settings_html(ctx, setup_pages.error_note(str(e)), 400)
    guard = ctx.auth.guard
    guard.clear()
    _log.info("admin password set")
    # The one who set it is logged in; everyone else must log in again.
    return _session_cookie(Response.redirect("/settings?done=admin", 303), guard.new_session())


async def settings_reset_post(ctx, req):
    try:
        if not _form(req).get("confirm"):
            raise config.ConfigError("confirm", "tick the box to confirm")
    except config.ConfigError as e:
        return settings_html(ctx, setup_pages.error_note(str(e)), 400)
    from perch.wifijoin import factory_reset

    factory_reset(ctx)
    body = ("<section><h2>Factory reset</h2><p>Settings erased. The device restarts "
            "with its setup network <b>%s</b>.</p></section>" % pages.esc(ctx.device_id))
    return pages.html(pages.shell(ctx, "Factory reset", body))


# --- login ----------------------------------------------------------------------


def login_html(ctx, msg="", status=200, nxt="/"):
    return pages.html(setup_pages.login_page(ctx, msg, nxt), status)


async def login_get(ctx, req):
    return login_html(ctx, nxt=auth.safe_next(req.args.get("next")))


async def login_post(ctx, req):
    web = ctx.auth
    g = web.guard
    try:
        form = _form(req)
    except config.ConfigError as e:
        return login_html(ctx, str(e), 400)
    nxt = auth.safe_next(form.get("next"))
    if not web.required():
        return Response.redirect(nxt, 303)
    left = g.lock_left_s()
    if left:
        return login_html(ctx, "Too many failed attempts: login is locked for %d s." % left,
                          429, nxt)
    if await web.check(form.get("password") or ""):
        g.succeeded()
        _log.info("admin logged in")
        return _session_cookie(Response.redirect(nxt, 303), g.new_session())
    g.failed()
    _log.warning("failed login", fails=g.fails)
    left = g.lock_left_s()
    if left:
        return login_html(ctx, "Wrong password. Login is locked for %d s." % left, 429, nxt)
    return login_html(ctx, "Wrong password (%d attempts left)." % (auth.MAX_FAILS - g.fails),
                      401, nxt)
