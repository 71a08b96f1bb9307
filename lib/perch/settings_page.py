# The settings pages: device, MQTT and update settings, admin password, factory reset.
# Loaded by setup_views.dispatch for /settings... and dropped by it after the request.
from microdot import Response
from micropython import const

from perch import auth, config
from perch.pages import html, page
from perch.setup_views import log_, read_form, session_cookie, whole

# Blocks of pages.html (the build checks these numbers)
_B_OK = const(3)
_B_ADMIN = const(23)
_B_SETTINGS = const(24)
_B_RESET = const(25)
_B_ERASED = const(26)

_KEEP = "set – leave blank to keep"


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


def settings_html(ctx, note=None, status=200):
    cfg = ctx.cfg
    url, user, pw = split_mqtt_url(cfg["mqtt.url"])
    body = [(_B_SETTINGS, (note, cfg["name"], url, user, _KEEP if pw else "not set",
                           cfg["telemetry.interval_s"], cfg["ota.server"],
                           _KEEP if cfg["ap.password"] else "open network")),
            (_B_ADMIN, ("Admin password",)), (_B_RESET,)]
    return html(page(ctx, "Settings", body), status)


async def settings_get(ctx, req):
    if req.args.get("done") == "admin":
        return settings_html(ctx, (_B_OK, ("Admin password set. This browser stays logged in; "
                                           "others must log in.",)))
    return settings_html(ctx)


async def settings_post(ctx, req):
    f = read_form(req)
    ch = {
        "name": (f.get("name") or "").strip() or None,
        "mqtt.url": join_mqtt_url(ctx.cfg["mqtt.url"], f.get("mqtt_url") or "",
                                  (f.get("mqtt_user") or "").strip(),
                                  f.get("mqtt_password") or "",
                                  bool(f.get("mqtt_password_clear"))),
        "telemetry.interval_s": whole(f, "interval", "telemetry.interval_s"),
        "ota.server": (f.get("ota_server") or "").strip() or None,
    }
    if f.get("ap_password"):
        ch["ap.password"] = f.get("ap_password")
    ctx.cfg.update(ch)
    log_.info("settings saved")
    return settings_html(ctx, (_B_OK, ("Saved.",)))


async def settings_admin_post(ctx, req):
    f = read_form(req)
    pw = f.get("password") or ""
    if pw != (f.get("password2") or ""):
        raise config.ConfigError("admin.password", "the two passwords differ")
    config.check("admin.password", pw)
    ctx.cfg.update({"admin.password": await auth.hash_password(pw)})
    guard = ctx.auth.guard
    guard.clear()
    log_.info("admin password set")
    # The one who set it is logged in; everyone else must log in again.
    return session_cookie(Response.redirect("/settings?done=admin", 303), guard.new_session())


async def settings_reset_post(ctx, req):
    if not read_form(req).get("confirm"):
        raise config.ConfigError("confirm", "tick the box to confirm")
    from perch.wifijoin import factory_reset

    factory_reset(ctx)
    return html(page(ctx, "Factory reset", (_B_ERASED, (ctx.device_id,))))
