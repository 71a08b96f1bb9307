# The setup pages: first-run wizard, Wi-Fi forms and join result, login; the settings pages
# are in setup_pages. Markup is in pages.html. Plain forms that work without JavaScript in
# a captive mini-browser; the small scripts only add the show-password toggle and a live
# scan list.
#
# Loaded for one request at a time by auth.view() and dropped afterwards (with setup_pages):
# pages are rare, and their code would otherwise sit in RAM for the board's lifetime.
from microdot import Response
from micropython import const

from perch import auth, config, log
from perch.pages import html, page, render
from perch.portal import network_entry, saved_public, set_meta

# Blocks of pages.html (the build checks these numbers)
_B_ERR = const(2)
_B_WELCOME = const(9)
_B_LINKED = const(10)
_B_UNLINKED = const(11)
_B_CHOOSER = const(12)
_B_NET = const(13)
_B_DIM = const(14)
_B_LOCK = const(15)
_B_OPEN = const(16)
_B_CHOOSER_JS = const(17)
_B_SAVED = const(18)
_B_SAVED_NET = const(19)
_B_CONNECTING = const(20)
_B_CONNECTED = const(21)
_B_CLOSING = const(22)
_B_ADMIN = const(23)
_B_LOGIN = const(27)
_B_MISSING = const(28)

_BARS = "\u2582\u2584\u2586\u2588"

log_ = log.Logger("portal")


async def dispatch(ctx, req, pg, action):
    """Run handler <pg>_<action>_<method> of /wifi... (here) or /settings... (setup_pages)."""
    g = globals()
    if pg == "settings":
        from perch import setup_pages

        g = setup_pages.__dict__
    method = "get" if req.method == "HEAD" else req.method.lower()
    name = "%s_%s%s" % (pg, action + "_" if action else "", method)
    fn = g.get(name) if action.isalpha() or not action else None
    if fn is None:
        return html(page(ctx, "Not found", render(_B_MISSING)), 404)
    try:
        return await fn(ctx, req)
    except config.ConfigError as e:
        # a refused form comes back with the reason on top: 400
        return g[pg + "_html"](ctx, error_note(str(e)), 400)


def error_note(msg):
    return render(_B_ERR, (msg,))


def read_form(req):
    # Invalid UTF-8 or %-escapes in a form body are the client's fault: 400, not 500.
    try:
        return req.form or {}
    except (ValueError, UnicodeError):
        raise config.ConfigError("form", "body is not valid UTF-8 form data")


def whole(f, key, field):
    try:
        return int(f.get(key) or "0")
    except ValueError:
        raise config.ConfigError(field, "must be a whole number")


def _scan_doc(w):
    if w.scan_at is None and not w.scanning:
        w.request_scan()
    return w.scan_doc()


def _refreshing(r, doc):
    # No-JS clients reload while the first scan runs; scripts poll instead.
    if doc["scanning"] and not doc["networks"]:
        r.headers["Refresh"] = "2"
    return r


def _net(n, chosen):
    r = n["rssi"]
    k = 4 if r >= -55 else 3 if r >= -67 else 2 if r >= -75 else 1
    sec = n["security"]
    return render(_B_NET, (n["ssid"], n["ssid"] == chosen and b" checked", r, k, _BARS[:k],
                           k < 4 and render(_B_DIM, (_BARS[k:],)),
                           render(_B_OPEN) if sec == "open" else render(_B_LOCK, (sec,))))


def _chooser(doc, chosen="", note=None):
    """The network picker form, posting to /wifi."""
    nets = doc["networks"]
    if doc["age_s"] is None:
        state = "Scanning for networks…" if doc["scanning"] else "No scan yet."
    else:
        state = "%d network%s found %d s ago." % (len(nets), "" if len(nets) == 1 else "s",
                                                 doc["age_s"])
        if doc["scanning"]:
            state += " Scanning again…"
    # a network typed by hand comes back in the "other" field
    other = bool(chosen) and chosen not in [n["ssid"] for n in nets]
    return render(_B_CHOOSER, (note, state, doc["scanning"] and b'<i id="scanning" hidden></i>',
                               (_net(n, chosen) for n in nets), other and b" checked",
                               other and chosen))


def wifi_html(ctx, note=None, status=200, chosen=""):
    w = ctx.wifi
    doc = _scan_doc(w)
    st = w.status()
    if st and st["ssid"]:
        top = render(_B_LINKED, (st["ssid"], st["ip"],
                                 ", %d dBm" % st["rssi"] if st["rssi"] else None))
    else:
        top = render(_B_UNLINKED)
    saved = [render(_B_SAVED_NET, (n["ssid"], n["hidden"] and " (hidden)", n["priority"]))
             for n in saved_public(w)]
    body = (top, _chooser(doc, chosen, note), saved and render(_B_SAVED, (saved,)))
    return _refreshing(html(page(ctx, "Wi-Fi", body, _B_CHOOSER_JS), status), doc)


async def wizard(ctx, req):
    doc = _scan_doc(ctx.wifi)
    body = (render(_B_WELCOME, (ctx.device_id,)), _chooser(doc))
    return _refreshing(html(page(ctx, "Setup", body, _B_CHOOSER_JS)), doc)


async def wifi_get(ctx, req):
    return wifi_html(ctx)


def _back():
    return Response.redirect("/wifi", 303)


async def wifi_scan_post(ctx, req):
    ctx.wifi.request_scan()
    return _back()


async def wifi_post(ctx, req):
    w = ctx.wifi
    f = read_form(req)
    manual = f.get("manual") or ""
    ssid = manual or f.get("ssid") or ""
    if not ssid:
        raise config.ConfigError("ssid", "pick a network or type its name")
    n = network_entry({"ssid": ssid, "password": f.get("password") or "",
                       "hidden": bool(manual)}, w)
    w.request_join(n["ssid"], n["password"], n["hidden"], n["priority"])
    return Response.redirect("/wifi/result", 303)


async def wifi_result_get(ctx, req):
    w = ctx.wifi
    a = w.attempt
    st = a["state"]
    if st == "idle":
        return _back()
    if st == "failed":
        return wifi_html(ctx, error_note("Could not join %s: %s." % (a["ssid"], a["reason"])),
                         chosen=a["ssid"])
    if st == "connecting":
        r = html(page(ctx, "Connecting", render(_B_CONNECTING, (a["ssid"],))))
        r.headers["Refresh"] = "1"
        return r
    cfg = ctx.cfg
    port = cfg["http.port"]
    suffix = "" if port == 80 else ":%d" % port
    dev = ctx.device_id
    body = (render(_B_CONNECTED, (dev, a["ssid"], a["ip"] + suffix, dev + ".local" + suffix,
                                  w.ap_on and render(_B_CLOSING, (dev, cfg["ap.linger_s"],
                                                                  a["ssid"])))),
            None if cfg["admin.password"] else render(_B_ADMIN, ("Protect this device",)))
    return html(page(ctx, "Connected", body))


async def wifi_saved_post(ctx, req):
    w = ctx.wifi
    f = read_form(req)
    prio = whole(f, "priority", "priority")
    cur = [n for n in w.saved() if n["ssid"] == f.get("ssid")]
    if not cur:
        raise config.ConfigError("ssid", "not a saved network")
    set_meta(w, network_entry({"ssid": cur[0]["ssid"], "hidden": cur[0]["hidden"],
                               "priority": prio}, w, need_password=False))
    return _back()


async def wifi_forget_post(ctx, req):
    ctx.wifi.forget(read_form(req).get("ssid") or "")
    return _back()


# --- login ----------------------------------------------------------------------


def login_html(ctx, msg=None, status=200, nxt="/"):
    return html(page(ctx, "Log in", render(_B_LOGIN, (msg and error_note(msg), nxt))), status)


def session_cookie(r, tok):
    r.headers["Set-Cookie"] = ["%s=%s; Path=/; HttpOnly; SameSite=Strict" % (auth.COOKIE, tok)]
    return r


async def login_get(ctx, req):
    return login_html(ctx, nxt=auth.safe_next(req.args.get("next")))


async def login_post(ctx, req):
    web = ctx.auth
    g = web.guard
    try:
        form = read_form(req)
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
        log_.info("admin logged in")
        return session_cookie(Response.redirect(nxt, 303), g.new_session())
    g.failed()
    log_.warning("failed login", fails=g.fails)
    left = g.lock_left_s()
    if left:
        return login_html(ctx, "Wrong password. Login is locked for %d s." % left, 429, nxt)
    return login_html(ctx, "Wrong password (%d attempts left)." % (auth.MAX_FAILS - g.fails),
                      401, nxt)
