# OTA, the part that stays in RAM: state and status, the trial confirmation by health check,
# one route for /api/ota... and /firmware..., and the "ota" and "rollback" MQTT commands. The
# work behind them loads per use and is dropped after, so that one look at the firmware page
# does not cost RAM for good: GET /api/ota and the page load ota_page (and httpc for the
# version list, only with ota.server set), an upload ota_install and unpack, the other
# POSTs and the commands ota_cmd.
import asyncio
import gc
import io
import time

from micropython import const

from perch import hw, log
from perch.config import drop as drop_module
from perch.config import lazy

_HEALTHY_AGAIN_S = const(60)
_LAZY = ("ota_install", "ota_cmd", "ota_page", "bundle", "unpack", "unpack_head", "slotwrite",
         "httpc", "fwimage", "slots")
BUSY = ("downloading", "installing", "rebooting")

LOG = log.Logger("ota")


def work(name="ota_cmd"):
    # Collect first: the code then loads into one compact run of the heap.
    gc.collect()
    return __import__("perch." + name, None, None, (name,))


def blocks():
    """An install's blocks of ~2 KB, taken after a collection and before its code loads, while
    the heap still has such blocks (the code then goes into smaller holes): a compressed
    block (unpack._ZMAX), room for the inflater and the signature check's numbers, and the
    copy buffer (1 KB: 2 KB copies ~10% faster on the Unix port, far above what Wi-Fi and
    flash allow, for 1 KB more at the peak). The reader takes what is missing later."""
    gc.collect()
    bio = room = buf = None
    try:
        bio = io.BytesIO(2112)
        room = bytearray(1888)
    except MemoryError:
        pass
    for n in (1024, 512):
        try:
            buf = bytearray(n)
            break
        except MemoryError:
            pass
    return [bio, room, buf]


def drop(o):
    """Forget the lazily loaded modules while no install runs. Live objects (a generator
    still streaming the page) keep what they use until they finish."""
    t = o.task
    if o.state in BUSY or (t is not None and not t.done()):
        return
    for m in _LAZY:
        drop_module(m)


class OTA:
    def __init__(self, ctx):
        self.ctx = ctx
        self.state = "idle"
        self.progress = 0
        self.last_error = self.target = self.reader = self.task = None
        self.index = self.index_ms = self.index_error = None
        self.peak_alloc = 0
        self.fw = False  # the firmware partitions' labels, read on first use (fixed till reboot)
        slots = lazy("slots")
        st = slots.load()
        self.trial = bool(st["trial"])
        self.reason = st["reason"]
        self.fw_trial = None
        if slots.exists("app/firmware.json"):
            from perch import fwimage

            fwimage.boot(self, st)
            drop(self)
        self.confirmed = not self.trial and not self.fw_trial

    def status(self):
        p = self.progress
        r = self.reader
        if r and r.total and self.state in BUSY:
            p = min(99, r.done * 100 // r.total)
        return {"state": self.state, "progress": p, "last_error": self.last_error,
                "target": self.target, "trial": self.trial, "confirmed": self.confirmed,
                "rollback_reason": self.reason,
                "firmware_pending": self.fw_trial.get("version") if self.fw_trial else None}


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


async def _confirm(o):
    ctx = o.ctx
    if o.reason:
        LOG.warning("rolled back", reason=o.reason, running=ctx.version)
    limit = ctx.cfg["ota.confirm_s"]
    while _failing(ctx):
        await asyncio.sleep_ms(500 if o.trial else 5000)
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
    # a confirmed version that stays up is not in a boot loop: clear its crash count
    await asyncio.sleep(_HEALTHY_AGAIN_S)
    lazy("slots").confirm()


def setup(ctx):
    o = OTA(ctx)
    ctx.ota = o
    ctx.status["ota"] = o.status

    # One route for the JSON API (/api/ota, /api/ota/install|upload|rollback) and the page
    # (/firmware, /firmware/install|rollback): the two GETs and the upload here, the rest
    # (and the 404s and 405s) in ota_cmd.
    @ctx.web.route("/<re:(api.ota|firmware).*:p>", methods=["GET", "POST"])
    async def route(request, p):
        post = request.method == "POST"
        try:
            if p == "api/ota" and not post:
                return await work("ota_page").describe(o)
            if p == "firmware" and not post:
                return await work("ota_page").firmware_page(o)
            if p == "api/ota/upload" and post:
                return await work("ota_install").upload(o, request, blocks())
            return await work().handle(o, request, p)
        finally:
            drop(o)

    async def command(doc):
        try:
            return await work().command(o, doc)
        finally:
            drop(o)

    ctx.commands["ota"] = ctx.commands["rollback"] = command
    asyncio.create_task(_confirm(o))
