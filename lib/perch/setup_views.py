# The HTML pages of setup, as auth.view() runs them: each request goes to the module of its
# page family, loaded for that request only and dropped after it (with this module, by
# auth.view): the wizard and Wi-Fi pages (setup_pages), settings (settings_page) and login
# (login_page). Pages are rare; their code would otherwise sit in RAM for good. The markup
# is in pages.html. Plain forms that work without JavaScript in a captive mini-browser.
import sys

from micropython import const

from perch import auth, config, log
from perch.pages import html, page

# Blocks of pages.html (the build checks these numbers)
_B_ERR = const(2)
_B_MISSING = const(28)

log_ = log.Logger("portal")


async def dispatch(ctx, req, pg, action):
    """Run handler <pg>_<action>_<method> of pg's module; a form that a handler refuses
    (ConfigError) comes back with the reason on top, as <pg>_html(ctx, note, 400)."""
    mod = "perch." + ("settings_page" if pg == "settings" else "login_page" if pg == "login"
                      else "setup_pages")
    __import__(mod)
    g = sys.modules[mod].__dict__
    try:
        method = "get" if req.method == "HEAD" else req.method.lower()
        name = "%s_%s%s" % (pg, action + "_" if action else "", method)
        # a dict lookup: getattr would intern every name a client makes up, for good
        fn = g.get(name) if action.isalpha() or not action else None
        if fn is None:
            return html(page(ctx, "Not found", (_B_MISSING,)), 404)
        try:
            return await fn(ctx, req)
        except config.ConfigError as e:
            return g[pg + "_html"](ctx, error_note(str(e)), 400)
    finally:
        config.drop(mod[6:])


async def wizard(ctx, req):
    return await dispatch(ctx, req, "wizard", "")


async def login_get(ctx, req):
    # GET and POST /login (perch.web): login_page's login_get or login_post
    return await dispatch(ctx, req, "login", "")


def error_note(msg):
    return (_B_ERR, (msg,))


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


def session_cookie(r, tok):
    r.headers["Set-Cookie"] = ["%s=%s; Path=/; HttpOnly; SameSite=Strict" % (auth.COOKIE, tok)]
    return r
