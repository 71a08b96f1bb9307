# The app's start, run once (perch.app.run) and dropped after: the context's values, the web
# app, the features and the route patterns.

import gc
import time

from microdot import URLPattern

from perch import hw, log, web
from perch.config import Config, lazy

# Feature modules, imported at start; each has setup(ctx). A missing or broken one is logged
# and skipped, so that the web page (and with it OTA and rollback) keeps working.
FEATURES = ("auth", "wifi", "portal", "telemetry", "ota")


def _web(ctx):
    from microdot import Microdot, Request, Response

    from perch import httpguard

    app = Microdot()
    web.ctx = ctx
    # Limits, read deadlines and the captive redirect, ahead of microdot's own parsing.
    httpguard.app = app
    httpguard.log = web._log  # type: ignore[assignment]
    app.handle_request = httpguard.handle  # type: ignore[method-assign]
    # Our own limits apply first; microdot's global cap must admit uploads.
    Request.max_content_length = 8 * 1024 * 1024  # the guard's upload limit
    ctx.guard = httpguard
    Response.default_content_type = "application/json"
    app.errorhandler(404)(web.not_found)
    app.errorhandler(Exception)(web.crashed)
    return app


def boot(ctx):
    _log = log.Logger("app")
    ctx.boot_ms = time.ticks_ms()
    ctx.cfg = cfg = Config()
    log.set_level(cfg["log.level"])
    ctx.device_id = hw.device_id()
    ctx.version = lazy("version").VERSION  # the module is not kept for one string
    # Read once, with the slot code loaded for that only: a new previous version
    # only comes with an OTA, and that reboots.
    s = lazy("slots")
    ctx.previous_version = s.slot_version(s.load()["previous"])
    s = None
    ctx.status = {}
    ctx.health = {}
    ctx.commands = {}
    # gc.mem_free() walks the whole heap: the watch loop refreshes this once a second
    # for the status requests to read.
    ctx.mem = {"free": gc.mem_free(), "alloc": gc.mem_alloc()}
    ctx.stall_max_ms = 0
    ctx.stall_window_ms = 0
    ctx.started = False

    app = ctx.web = _web(ctx)
    for name in FEATURES:
        # Loading code needs contiguous blocks: collect first, so that each module lands in
        # one compact run of the heap rather than in the gaps the previous one left.
        gc.collect()
        try:
            m = __import__("perch." + name, None, None, (name,))
        except ImportError as e:
            _log.warning("feature not available", feature=name, error=str(e))
            continue
        except Exception as e:  # MemoryError above all: keep the web page up for rollback
            _log.exc(e, "feature failed to load", feature=name)
            continue
        try:
            m.setup(ctx)
        except Exception as e:
            _log.exc(e, "feature setup failed", feature=name)
    _log.info("started", version=ctx.version, device=ctx.device_id, port=cfg["http.port"])
    for err in cfg.errors:
        _log.error("bad config ignored", detail=err)
    # Few routes: each costs about 600 bytes of RAM for good, so one route, after every
    # feature's, serves the core API ("/api/<name>"), the pages ("/", "/logs", "/style.css")
    # and auth's "/login" and "/logout" (perch.web.core checks the name and the method, and
    # answers 404 for other names). A segment type of our own, as a route's segments cannot
    # hold a "/"; MicroPython's re is small: one more alternative is "regex too complex".
    URLPattern.segment_patterns["core"] = "/(api/[a-z]+|[a-z.]+)?"
    app.route("/<core:name>", methods=["GET", "POST", "PATCH", "PUT", "DELETE"])(web.core)
    # microdot compiles a route's pattern on the first request that reaches it, and keeps
    # the regex and segment dicts for good: made then, they pin small blocks all over a heap
    # that requests have churned, until no block is left for a page's code. Made now, they
    # sit together with the rest of the boot-time objects.
    for route in app.url_map:
        p = route[1]
        if p.regex is None:
            p.compile()
