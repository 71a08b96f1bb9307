# OTA, the part that stays in RAM: state and status, one route for /api/ota... and
# /firmware..., and the "ota" and "rollback" MQTT commands. The work behind them loads per use
# and is dropped after, so that one look at the firmware page does not cost RAM for good: GET
# /api/ota and the page load ota_page (and httpc for the version list, only with ota.server
# set), an upload ota_install and unpack, the other POSTs and the commands ota_cmd. The trial
# confirmation by health check (ota_trial) stays only till the running version is confirmed.
import asyncio
import gc

from micropython import const

from perch import log
from perch.config import drop as drop_module
from perch.config import lazy

_HEALTHY_AGAIN_S = const(60)
_LAZY = ("ota_install", "ota_cmd", "ota_page", "bundle", "unpack", "unpack_head", "unpack_list",
         "unpack_body", "slotwrite", "httpc", "fwimage", "slots")
BUSY = ("downloading", "installing", "rebooting")

LOG = log.Logger("ota")


def work(name="ota_cmd"):
    # Collect first: the code then loads into one compact run of the heap.
    gc.collect()
    return __import__("perch." + name, None, None, (name,))


def blocks(out=None):
    """An install's blocks, taken after a collection and before its code loads, while the
    heap still has runs of 1-2 KB (the code then goes into smaller holes): the copy buffer
    (1 KB: 2 KB copies ~10% faster on the Unix port, far above what Wi-Fi and flash allow),
    then runs kept free for the signature check's numbers and after that for the inflater's
    blocks, one of each size (see unpack_body._take)."""
    gc.collect()
    b = [out] if out else []  # the guard's response buffer, idle during an upload
    # the copy buffer; the compressed block, the inflater's state and window
    for n in (1024, 2128, 1336, 1024)[1 if out else 0 :]:
        try:
            b.append(bytearray(n))
        except MemoryError:
            pass
    return b


def drop(o):
    """Forget the lazily loaded modules while no install runs. Live objects (a generator
    still streaming the page) keep what they use until they finish."""
    t = o.task
    if o.state in BUSY or (t is not None and not t.done()):
        return
    for m in _LAZY:
        drop_module(m)


class OTA:
    # set by ota_trial.boot (annotations only: no code, no names at run time)
    trial: bool
    confirmed: bool
    reason: str | None
    fw_trial: dict | None

    def __init__(self, ctx):
        self.ctx = ctx
        self.state = "idle"
        self.progress = 0
        self.last_error = self.target = self.reader = self.task = None
        self.index = self.index_ms = self.index_error = None
        self.peak_alloc = 0
        self.fw = False  # the firmware partitions' labels, read on first use (fixed till reboot)
        lazy("ota_trial").boot(self)  # trial, reason, fw_trial, confirmed

    def status(self):
        p = self.progress
        r = self.reader
        if r and r.total and self.state in BUSY:
            p = min(99, r.done * 100 // r.total)
        return {"state": self.state, "progress": p, "last_error": self.last_error,
                "target": self.target, "trial": self.trial, "confirmed": self.confirmed,
                "rollback_reason": self.reason,
                "firmware_pending": self.fw_trial.get("version") if self.fw_trial else None}


async def _trial(o):
    # The health check's code only till the running version is confirmed; a confirmed
    # version that stays up is not in a boot loop: clear its crash count.
    await lazy("ota_trial").run(o)
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
                b = blocks(getattr(request, "out", None))  # httpguard lends its buffer
                return await work("ota_install").upload(o, request, b)
            return await work().handle(o, request, p)
        finally:
            drop(o)

    async def command(doc):
        try:
            return await work().command(o, doc)
        finally:
            drop(o)

    ctx.commands["ota"] = ctx.commands["rollback"] = command
    asyncio.create_task(_trial(o))
