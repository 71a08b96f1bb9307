# The web server's core: the core API (status, logs, config, reboot) and pages, the error
# handlers, and the JSON helpers of every route. perch.start builds the microdot app.
#
# httpguard reads and bounds each request before microdot sees it, so microdot's own
# Request limits never apply. The HTML of the pages (perch.pages) is loaded per request.

import asyncio
import gc
import json

from microdot import Response

from perch import log
from perch.config import lazy

_log = log.Logger("web")


def json_error(status, msg, **extra):
    extra["error"] = msg
    return Response(extra, status)


def body_json(request):
    """The request's JSON object, or raise ValueError with a readable reason."""
    try:
        doc = json.loads(request.body or b"{}")
    except ValueError:
        raise ValueError("body is not valid JSON")
    if not isinstance(doc, dict):
        raise ValueError("body must be a JSON object")
    return doc


# The handlers are module functions, registered by perch.start (which builds the microdot
# app once and is dropped): closures made at start would keep start's code in RAM for good.
if False:  # for the type checker only: MicroPython has no typing module
    from typing import Any
ctx: "Any" = None  # perch.app's Context, set by perch.start


async def core(request, name):
    # The route after every feature's (see perch.start): the core API, the pages, /login and
    # /logout, and a 404 for any other name it matches. It checks the method itself.
    m = "GET" if request.method == "HEAD" else request.method
    api = name and name[0:4] == "api/"
    if api:
        name = name[4:]
        if name not in ("status", "loop", "logs", "config", "reboot"):
            return await not_found(request)
    elif name == "login" or name == "logout":
        if m != "GET" and m != "POST":
            return json_error(405, "method not allowed")
        if name == "logout":
            return lazy("login").logout(request)
        from perch import auth

        return await auth.view("login_get", ctx, request)  # GET and POST: by the method
    elif name and name != "logs" and name != "style.css":
        return await not_found(request)
    if m != ("POST" if name == "reboot" else "GET") and not (m == "PATCH" and name == "config"):
        return json_error(405, "method not allowed")
    if not api:
        # Collect first, so that the page code lands in one compact run of the heap instead
        # of failing on a fragmented one (as perch.portal does for its pages).
        gc.collect()
        p = lazy("pages")
        if name == "style.css":
            return p.stylesheet()
        return p.html(p.logs_page(ctx) if name else p.status_page(ctx))
    if name == "status":
        if "gc" in request.args:
            # Collect first, so that mem.alloc is the live heap (the bench asks for it).
            gc.collect()
            ctx.measure_mem()
        return ctx.snapshot()
    if name == "loop":
        # Longest loop stall since the previous call: the bench reads it around a scenario.
        doc = {"max_stall_ms": ctx.stall_window_ms}
        ctx.stall_window_ms = 0
        return doc
    # /api/logs, /api/config and /api/reboot: perch.coreapi's, loaded per request
    return lazy("coreapi").api(ctx, request, name, m)


async def not_found(request):
    return json_error(404, "not found: " + request.path)


async def crashed(request, e):
    if isinstance(e, asyncio.TimeoutError):
        # An upload's body stalled (perch.replay): the guard's read deadline, as a 408.
        return "request body stalled for 5000 ms\n", 408
    _log.exc(e, "request failed", path=request.path)
    return json_error(500, "internal error")
