# The web server: microdot with the core API (status, logs, config, reboot) and pages.
#
# httpguard reads and bounds each request before microdot sees it, so microdot's own
# Request limits never apply. The HTML of the pages (perch.pages) is loaded per request.

import asyncio
import gc
import json

from microdot import Microdot, Request, Response, URLPattern

from perch import httpguard, log
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


def create(ctx):
    app = Microdot()
    # Limits, read deadlines and the captive redirect, ahead of microdot's own parsing.
    httpguard.app = app
    httpguard.log = _log  # type: ignore[assignment]
    app.handle_request = httpguard.handle  # type: ignore[method-assign]
    # Our own limits apply first; microdot's global cap must admit uploads.
    Request.max_content_length = 8 * 1024 * 1024  # the guard's upload limit
    ctx.guard = httpguard
    Response.default_content_type = "application/json"

    # Few routes: each costs about 600 bytes of RAM for good, so one pattern serves the core
    # API and the pages ("/", "/logs", "/style.css"; name None, "logs", "style.css"), and the
    # handler checks the method itself. A segment type of our own, as a route's segments
    # cannot hold a "/"; MicroPython's re has no (?:), hence the inner group.
    URLPattern.segment_patterns["core"] = (
        "/(api/(status|loop|logs|config|reboot)|logs|style\\.css)?"
    )

    @app.route("/<core:name>", methods=["GET", "POST", "PATCH"])
    async def core(request, name):
        m = "GET" if request.method == "HEAD" else request.method
        api = name and name[0] == "a"
        if api:
            name = name[4:]
        if (m == "POST") != (name == "reboot") or m == "PATCH" and name != "config":
            return json_error(405, "method not allowed")
        if not api:
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
        # /api/logs, /api/config and /api/reboot: perch.status's, loaded per request
        return lazy("status").api(ctx, request, name, m)

    @app.errorhandler(404)
    async def not_found(request):
        return json_error(404, "not found: " + request.path)

    @app.errorhandler(Exception)
    async def crashed(request, e):
        if isinstance(e, asyncio.TimeoutError):
            # An upload's body stalled (perch.replay): the guard's read deadline, as a 408.
            return "request body stalled for 5000 ms\n", 408
        _log.exc(e, "request failed", path=request.path)
        return json_error(500, "internal error")

    return app
