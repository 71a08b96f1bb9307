# The app: one asyncio loop running the web server and every feature's tasks.

import asyncio
import gc
import time

from micropython import const

from perch import hw, log
from perch.config import Config, lazy

_TICK_MS = const(20)
_WDT_MS = const(30000)
_SWEEP = const(12)  # ticks: HTTP read deadlines are kept to about 250 ms
_FEED_EVERY = const(48)  # ticks: feed the watchdog about once a second (a multiple of _SWEEP)

_log = log.Logger("app")


class Context:
    """What the features share: config, identity, the web app and status providers; the
    values are set by perch.start."""

    # (annotations only: MicroPython keeps nothing of them)
    boot_ms: int
    cfg: Config
    device_id: str
    version: str
    previous_version: str
    status: dict
    mem: dict
    stall_max_ms: int
    stall_window_ms: int
    started: bool


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
    # The start's code is needed once: loaded for it, and freed after.
    lazy("start").boot(ctx)
    asyncio.create_task(_watch_loop(ctx))
    gc.collect()
    ctx.started = True
    # The guard's handler straight on asyncio's server: microdot's start_server would wrap
    # each connection in a coroutine of its own. .server is what perch.ota's health check
    # looks for, as microdot sets it.
    ctx.web.server = srv = await asyncio.start_server(
        ctx.guard.handle, "0.0.0.0", ctx.cfg["http.port"]
    )
    await srv.wait_closed()


def main():
    asyncio.run(run(Context()))
