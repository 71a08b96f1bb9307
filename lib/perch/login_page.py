# The login page (see setup_views, which loads it for /login requests and drops it after).
from microdot import Response
from micropython import const

from perch import auth
from perch.pages import html, page
from perch.setup_views import error_note, log_, read_form, session_cookie

# Blocks of pages.html (the build checks these numbers)
_B_LOGIN = const(27)


def login_html(ctx, note=None, status=200, nxt="/"):
    return html(page(ctx, "Log in", (_B_LOGIN, (note, nxt))), status)


async def login_get(ctx, req):
    return login_html(ctx, nxt=auth.safe_next(req.args.get("next")))


async def login_post(ctx, req):
    web = ctx.auth
    g = web.guard
    form = read_form(req)
    nxt = auth.safe_next(form.get("next"))
    if not web.required():
        return Response.redirect(nxt, 303)
    left = g.lock_left_s()
    if left:
        msg = "Too many failed attempts: login is locked for %d s." % left
    elif await web.check(form.get("password") or ""):
        g.succeeded()
        log_.info("admin logged in")
        return session_cookie(Response.redirect(nxt, 303), g.new_session())
    else:
        g.failed()
        log_.warning("failed login", fails=g.fails)
        left = g.lock_left_s()
        msg = ("Wrong password. Login is locked for %d s." % left if left else
               "Wrong password (%d attempts left)." % (auth.MAX_FAILS - g.fails))
    return login_html(ctx, error_note(msg), 429 if left else 401, nxt)
