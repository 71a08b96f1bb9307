# The setup wizard and the Wi-Fi pages: network picker, join result, saved networks.
# Loaded by setup_views for one request and dropped after it. perch.wifijoin (6 KB of code)
# is imported by the handlers that change something, not by the pages a phone only shows.
from microdot import Response
from micropython import const

from perch import config
from perch.pages import html, page
from perch.setup_views import error_note, read_form, whole

# Blocks of pages.html (the build checks these numbers)
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

# Signal bars lit and dimmed, by strength: shared by every row of the list
_ON = ("\u2582", "\u2582\u2584", "\u2582\u2584\u2586", "\u2582\u2584\u2586\u2588")
_OFF = ((_B_DIM, ("\u2584\u2586\u2588",)), (_B_DIM, ("\u2586\u2588",)), (_B_DIM, ("\u2588",)),
        None)


def _net(n, chosen):
    r = n["rssi"]
    k = 3 if r >= -55 else 2 if r >= -67 else 1 if r >= -75 else 0
    sec = n["security"]
    return (_B_NET, (n["ssid"], n["ssid"] == chosen and b" checked", r, k + 1, _ON[k], _OFF[k],
                     (_B_OPEN,) if sec == "open" else (_B_LOCK, (sec,))))


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
    return (_B_CHOOSER, (note, state, doc["scanning"] and b'<i id="scanning" hidden></i>',
                         [_net(n, chosen) for n in nets], other and b" checked",
                         other and chosen))


def wifi_html(ctx, note=None, status=200, chosen="", title="Wi-Fi"):
    """The Wi-Fi page, or with title "Setup" the first-run wizard (no network saved yet)."""
    w = ctx.wifi
    if w.scan_at is None and not w.scanning:
        w.request_scan()
    doc = w.scan_doc()
    st = w.status()
    top = ((_B_WELCOME, (ctx.device_id,)) if title == "Setup" else
           (_B_LINKED, (st["ssid"], st["ip"], ", %d dBm" % st["rssi"] if st["rssi"] else None))
           if st and st["ssid"] else (_B_UNLINKED,))
    saved = [(_B_SAVED_NET, (n["ssid"], n["hidden"] and " (hidden)", n["priority"]))
             for n in w.saved()]
    body = [top, _chooser(doc, chosen, note), saved and (_B_SAVED, (saved,))]
    r = html(page(ctx, title, body, _B_CHOOSER_JS), status)
    # No-JS clients reload while the first scan runs; scripts poll instead.
    if doc["scanning"] and not doc["networks"]:
        r.headers["Refresh"] = "2"
    return r


async def wizard_get(ctx, req):
    return wifi_html(ctx, title="Setup")


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
    from perch.wifijoin import network_entry, request_join

    n = network_entry({"ssid": ssid, "password": f.get("password") or "",
                       "hidden": bool(manual)}, w)
    request_join(n["ssid"], n["password"], n["hidden"], n["priority"])
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
        r = html(page(ctx, "Connecting", (_B_CONNECTING, (a["ssid"],))))
        r.headers["Refresh"] = "1"
        return r
    cfg = ctx.cfg
    port = cfg["http.port"]
    suffix = "" if port == 80 else ":%d" % port
    dev = ctx.device_id
    body = [(_B_CONNECTED, (dev, a["ssid"], a["ip"] + suffix, dev + ".local" + suffix,
                            w.ap_on and (_B_CLOSING, (dev, cfg["ap.linger_s"], a["ssid"])))),
            None if cfg["admin.password"] else (_B_ADMIN, ("Protect this device",))]
    return html(page(ctx, "Connected", body))


async def wifi_saved_post(ctx, req):
    from perch.wifijoin import network_entry, set_meta

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
    from perch.wifijoin import forget

    forget(read_form(req).get("ssid") or "")
    return _back()
