# The trial of a new version (DESIGN.md "OTA"): loaded at boot for the slot state and the
# health check, and gone once the running version is confirmed, as nothing keeps it loaded.
import asyncio
import time

from perch import hw
from perch.config import lazy
from perch.ota import LOG, drop


def boot(o):
    slots = lazy("slots")
    st = slots.load()
    o.trial = bool(st["trial"])
    o.reason = st["reason"]
    o.fw_trial = None
    if slots.exists("app/firmware.json"):
        from perch import fwimage

        fwimage.boot(o, st)
        drop(o)
    o.confirmed = not o.trial and not o.fw_trial


def _failing(ctx):
    bad = [] if ctx.started else ["app"]
    for n, fn in ctx.health.items():
        try:
            ok = fn()
        except Exception:
            ok = False
        if not ok:
            bad.append(n)
    # microdot sets .server once its listening socket is up
    if getattr(ctx.web, "server", None) is None:
        bad.append("web")
    return bad


async def run(o):
    ctx = o.ctx
    if o.reason:
        LOG.warning("rolled back", reason=o.reason, running=ctx.version)
    limit = ctx.cfg["ota.confirm_s"]
    while _failing(ctx):
        await asyncio.sleep_ms(500)
        late = time.ticks_diff(time.ticks_ms(), ctx.boot_ms) > limit * 1000
        if late and (o.trial or o.fw_trial):
            why = "health check did not pass within %d s: %s" % (limit, ", ".join(_failing(ctx)))
            LOG.error("trial failed, resetting", reason=why)
            try:
                with open("app/crash.txt", "w") as f:
                    f.write(why)
            except OSError:
                pass
            await asyncio.sleep_ms(200)
            hw.reset()
    if o.trial:
        lazy("slots").confirm()
        LOG.info("version confirmed", version=ctx.version)
    hw.mark_app_valid()
    if o.fw_trial:
        from perch import fwimage

        fwimage.confirmed(o)
        drop(o)
    o.confirmed = True
