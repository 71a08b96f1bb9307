# The app: one asyncio loop running the web server and every feature's tasks.

import asyncio
import gc
import socket
import time

from micropython import const

from perch import hw, log
from perch.config import Config, lazy

_TICK_MS = const(20)
_WDT_MS = const(30000)
_SWEEP = const(12)  # ticks: HTTP read deadlines are kept to about 250 ms
_FEED_EVERY = const(48)  # ticks: feed the watchdog about once a second (a multiple of _SWEEP)


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

    # The delayed reboot (perch.coreapi's) and the /api/status document (perch.status's) are
    # loaded per use: both are rare next to the loop, and their code need not stay in RAM.
    def reboot(self, delay_ms=300):
        lazy("coreapi").reboot(self, delay_ms)

    def snapshot(self):
        """The /api/status document."""
        return lazy("status").snapshot(self)

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
    # The guard's handler straight on asyncio's accept loop (Server._serve, as start_server
    # runs it): microdot's start_server would wrap each connection in a coroutine of its own.
    # .server is what perch.ota's health check looks for, as microdot sets it. The listening
    # socket is made here, not by start_server, so that it can be closed when a MemoryError
    # (a new connection's Stream or task) ends the loop: then collect and serve again on a
    # new socket, where the board would otherwise reset. (asyncio loads its stream code
    # here, as start_server would: after the boot's collection, not ahead of the features.)
    from asyncio.stream import Server  # type: ignore[import-not-found]  # not in the stubs

    while True:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(socket.getaddrinfo("0.0.0.0", ctx.cfg["http.port"])[0][-1])
        s.listen(5)
        s.setblocking(False)
        srv = ctx.web.server = Server()
        srv.task = asyncio.create_task(srv._serve(s, ctx.guard.handle, None))
        try:
            return await srv.task  # returns once the server is closed
        except MemoryError:
            s.close()
            gc.collect()
            log.Logger("app").error("accept failed: serving again")


def main():
    asyncio.run(run(Context()))
