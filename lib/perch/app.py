# The app: one asyncio loop running the web server and every feature's tasks.

import asyncio
import gc
import time

from micropython import const

from perch import hw, log
from perch.config import Config, lazy
from perch.version import VERSION

# Feature modules, imported at start; each has setup(ctx). A missing or broken one is logged
# and skipped, so that the web page (and with it OTA and rollback) keeps working.
FEATURES = ("auth", "wifi", "portal", "telemetry", "ota")

_TICK_MS = const(20)
_WDT_MS = const(30000)
_SWEEP = const(12)  # ticks: HTTP read deadlines are kept to about 250 ms
_FEED_EVERY = const(48)  # ticks: feed the watchdog about once a second (a multiple of _SWEEP)

_log = log.Logger("app")


class Context:
    """What the features share: config, identity, the web app and status providers."""

    def __init__(self):
        self.boot_ms = time.ticks_ms()
        self.cfg = Config()
        log.set_level(self.cfg["log.level"])
        self.device_id = hw.device_id()
        self.version = VERSION
        # Read once, with the slot code loaded for that only: a new previous version
        # only comes with an OTA, and that reboots.
        s = lazy("slots")
        self.previous_version = s.slot_version(s.load()["previous"])
        self.web = None
        self.status = {}
        self.health = {}
        self.commands = {}
        # gc.mem_free() walks the whole heap: the watch loop refreshes this once a second
        # for the status requests to read.
        self.mem = {"free": gc.mem_free(), "alloc": gc.mem_alloc()}
        self.stall_max_ms = 0
        self.stall_window_ms = 0
        self.started = False

    def uptime_s(self):
        return time.ticks_diff(time.ticks_ms(), self.boot_ms) // 1000

    def reboot(self, delay_ms=300):
        # Delay so the HTTP or MQTT answer that asked for the reboot gets out first.
        async def later():
            await asyncio.sleep_ms(delay_ms)
            _log.info("rebooting")
            hw.reset()

        asyncio.create_task(later())

    def snapshot(self):
        """The /api/status document."""
        doc = {
            "device_id": self.device_id,
            "name": self.cfg["name"] or self.device_id,
            "version": self.version,
            "previous_version": self.previous_version,
            "uptime_s": self.uptime_s(),
            "mode": "sta",
            "mem": self.mem,
            "loop": {"max_stall_ms": self.stall_max_ms},
        }
        for name, fn in self.status.items():
            try:
                doc[name] = fn()
            except Exception as e:
                _log.exc(e, "status provider failed", provider=name)
        # What a feature that is not running reports.
        if "wifi" not in doc:
            doc["wifi"] = {"ssid": None, "rssi": None, "ip": None}
        if "mqtt" not in doc:
            doc["mqtt"] = {"state": "disabled", "broker": None, "queued": 0, "sent": 0,
                           "dropped": 0, "last_error": None}
        if "ota" not in doc:
            doc["ota"] = {"state": "idle", "progress": 0, "last_error": None}
        return doc

    def measure_mem(self):
        m = self.mem
        m["free"] = gc.mem_free()
        m["alloc"] = gc.mem_alloc()


async def _watch_loop(ctx):
    # The one periodic task of the core. A hung loop stops feeding the watchdog, and the chip
    # resets into boot.py, which counts the failed boot. Meanwhile, measure the longest stall
    # beyond our sleep, and keep the HTTP read deadlines (httpguard.sweep) every _SWEEP ticks.
    wdt = hw.watchdog(_WDT_MS)
    sweep = ctx.guard.sweep
    n = 0
    while True:
        n += 1
        if not n % _SWEEP:
            sweep()
            if n >= _FEED_EVERY:
                wdt.feed()
                ctx.measure_mem()
                n = 0
        t = time.ticks_ms()
        await asyncio.sleep_ms(_TICK_MS)
        late = time.ticks_diff(time.ticks_ms(), t) - _TICK_MS
        if late > ctx.stall_max_ms:
            ctx.stall_max_ms = late
        if late > ctx.stall_window_ms:
            ctx.stall_window_ms = late


async def run(ctx):
    from perch import web

    app = ctx.web = web.create(ctx)
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
    asyncio.create_task(_watch_loop(ctx))
    port = ctx.cfg["http.port"]
    _log.info("started", version=ctx.version, device=ctx.device_id, port=port)
    for err in ctx.cfg.errors:
        _log.error("bad config ignored", detail=err)
    # microdot compiles a route's pattern on the first request that reaches it, and keeps
    # the regex and segment dicts for good: made then, they pin small blocks all over a heap
    # that requests have churned, until no block is left for a page's code. Made now, they
    # sit together with the rest of the boot-time objects.
    for route in app.url_map:
        p = route[1]
        if p.regex is None:
            p.compile()
    gc.collect()
    ctx.started = True
    # The guard's handler straight on asyncio's server: microdot's start_server would wrap
    # each connection in a coroutine of its own. .server is what perch.ota's health check
    # looks for, as microdot sets it.
    app.server = srv = await asyncio.start_server(ctx.guard.handle, "0.0.0.0", port)
    await srv.wait_closed()


def main():
    asyncio.run(run(Context()))
