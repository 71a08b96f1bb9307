# OTA: state and status, the trial confirmation by health check, rollback, and setup (routes,
# MQTT commands). Installing (ota_install) loads on first use.
import asyncio
import gc
import time

from microdot import Request, Response
from micropython import const

from perch import hw, log, slots

_UPLOAD_MAX = const(16 * 1024 * 1024)
_HEALTHY_AGAIN_S = const(60)
_CHUNK = const(2048)  # bundle.Reader's chunk
_CRASH = "app/crash.txt"
_FW_PENDING = "app/firmware.json"  # fwimage.PENDING; fwimage is imported only when needed

_log = log.Logger("ota")


def work():
    # the install pipeline (ota_install, bundle, httpc) loads on first use
    from perch import ota_install

    return ota_install


class OTA:
    def __init__(self, ctx):
        self.ctx = ctx
        self.state = "idle"
        self.progress = 0
        self.last_error = None
        self.target = None
        self.reader = None
        self.task = None
        self.index = None
        self.index_ms = None
        self.index_error = None
        self.peak_alloc = 0
        self.buf = bytearray(_CHUNK)
        st = slots.load()
        self.trial = bool(st.get("trial"))
        self.reason = st.get("reason")
        self.fw_trial = None
        if slots.exists(_FW_PENDING):
            work().firmware_boot(self, st)
        self.confirmed = not self.trial and not self.fw_trial

    # ------------------------------------------------------------ status

    def cfg(self, key):
        return self.ctx.cfg["ota." + key]

    def pct(self):
        r = self.reader
        if self.state in ("downloading", "installing") and r and r.total:
            return min(99, r.done * 100 // r.total)
        return self.progress

    def status(self):
        return {"state": self.state, "progress": self.pct(), "last_error": self.last_error,
                "target": self.target, "trial": self.trial, "confirmed": self.confirmed,
                "rollback_reason": self.reason,
                "firmware_pending": self.fw_trial.get("version") if self.fw_trial else None}

    def busy(self):
        return self.state in ("downloading", "installing", "rebooting")

    def sample_heap(self):
        # live heap (after a collection), sampled during installs: it must not grow with size
        gc.collect()
        a = gc.mem_alloc()
        if a > self.peak_alloc:
            self.peak_alloc = a

    def take_buffer(self):
        # The pipeline's one buffer, taken at setup: after a while a small heap is fragmented
        # into blocks too small for it (1 KB at most at --heap 192k after boot).
        return self.buf

    def fail(self, msg):
        self.state = "error"
        self.last_error = msg
        self.reader = None
        _log.error("update failed", error=msg, target=self.target)

    def rollback(self, why, reboot=True):
        if self.busy():
            raise ValueError("an update is running (%s)" % self.state)
        st = slots.rollback(why)
        self.state = "rebooting"
        _log.warning("rolling back", to=slots.slot_version(st["active"]), reason=why)
        if reboot:
            self.ctx.reboot(500)
        return st

    # ------------------------------------------------------------ confirmation

    def web_serving(self):
        # microdot sets .server once its listening socket is up
        return getattr(self.ctx.web, "server", None) is not None

    def failing(self):
        bad = [n for n, fn in self.ctx.health.items() if not _safe(fn)]
        if not self.ctx.started:
            bad.insert(0, "app")
        return bad

    async def confirm_loop(self):
        if self.reason:
            _log.warning("rolled back", reason=self.reason, running=self.ctx.version)
        limit = self.cfg("confirm_s")
        t0 = self.ctx.boot_ms
        while True:
            await asyncio.sleep_ms(500 if self.trial else 5000)
            if not self.failing() and self.web_serving():
                break
            trial = self.trial or self.fw_trial
            if trial and time.ticks_diff(time.ticks_ms(), t0) > limit * 1000:
                why = "health check did not pass within %d s: %s" % (
                    limit, ", ".join(self.failing()) or "web")
                _log.error("trial failed, resetting", reason=why)
                try:
                    with open(_CRASH, "w") as f:
                        f.write(why)
                except OSError:
                    pass
                await asyncio.sleep_ms(200)
                hw.reset()
        if self.trial:
            slots.confirm()
            _log.info("version confirmed", version=self.ctx.version)
        hw.mark_app_valid()
        if self.fw_trial:
            from perch import fwimage

            fwimage.clear_pending()
            _log.info("firmware image confirmed", version=self.fw_trial.get("version"))
            self.fw_trial = None
        self.confirmed = True
        # a confirmed version that stays up is not in a boot loop: clear its crash count
        await asyncio.sleep(_HEALTHY_AGAIN_S)
        slots.confirm()


def installed(o, man):
    o.state = "rebooting"
    o.progress = 100
    o.reader = None
    _log.info("installed, rebooting into trial", version=man["version"], type=man["type"],
              previous=o.ctx.version)
    o.ctx.reboot(500)


def _safe(fn):
    try:
        return bool(fn())
    except Exception:
        return False


# ---------------------------------------------------------------- setup


def setup(ctx):
    from perch import ota_web

    o = OTA(ctx)
    ctx.ota = o
    ctx.status["ota"] = o.status
    # only /api/ota/upload takes a large body; every other route keeps the small limit
    small = Request.max_content_length
    Request.max_content_length = _UPLOAD_MAX

    @ctx.web.before_request
    async def body_limit(request):
        if request.content_length > small and request.path != "/api/ota/upload":
            return Response({"error": "request body too large"}, 413)

    ota_web.routes(ctx, o)
    ctx.commands["ota"] = _mqtt_ota(o)
    ctx.commands["rollback"] = _mqtt_rollback(o)
    asyncio.create_task(o.confirm_loop())


def _mqtt_ota(o):
    async def cmd(doc):
        v = doc.get("version")
        url = doc.get("url")
        if isinstance(v, str):
            await work().install_version(o, v)
            return {"state": o.state, "version": v}
        if isinstance(url, str):
            work().install_from_url(o, url)
            return {"state": o.state, "url": url}
        raise ValueError("ota needs \"version\" or \"url\"")
    return cmd


def _mqtt_rollback(o):
    async def cmd(doc):
        st = o.rollback("rollback by MQTT command from %s" % o.ctx.version, reboot=False)
        # reboot once the command result has been published
        return {"to": slots.slot_version(st["active"])}, lambda: o.ctx.reboot(500)
    return cmd
