# OTA: install app bundles from the update server, a URL or an upload into the inactive slot,
# confirm a trial version by its health check, and roll back on request.
import asyncio
import gc
import hashlib
import json
import time

from microdot import Request, Response
from micropython import const

from perch import hw, log, slots

_UPLOAD_MAX = const(16 * 1024 * 1024)
_INDEX_MAX = const(16384)
_INDEX_TTL_MS = const(30000)
_HEALTHY_AGAIN_S = const(60)
_CRASH = "app/crash.txt"
_FW_PENDING = "app/firmware.json"  # fwimage.PENDING; fwimage is imported only when needed

_log = log.Logger("ota")


# The pipeline's modules load on first use: a board that is not updating keeps their RAM.
def _bundle():
    from perch import bundle

    return bundle


def _httpc():
    from perch import httpc

    return httpc


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
        st = slots.load()
        self.trial = bool(st.get("trial"))
        self.reason = st.get("reason")
        self.fw_trial = None
        if slots.exists(_FW_PENDING):
            self.firmware_boot(st)
        self.confirmed = not self.trial and not self.fw_trial

    def firmware_boot(self, st):
        from perch import fwimage

        fw = fwimage.pending()
        try:
            running = hw.partition_label(hw.ota_partitions()[0])
        except (OSError, ValueError):
            running = None
        if fw and running == fw.get("label"):
            self.fw_trial = fw  # first boots of a new image: confirm it or the bootloader reverts
            return
        fwimage.clear_pending()
        if fw:
            st["reason"] = self.reason = ("firmware %s was not confirmed; the bootloader went "
                                          "back to %s" % (fw.get("version"), running))
            slots.save(st)

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

    def fail(self, msg):
        self.state = "error"
        self.last_error = msg
        self.reader = None
        _log.error("update failed", error=msg, target=self.target)

    # ------------------------------------------------------------ index

    async def releases(self, force=False):
        """The update server's release list (cached), or [] with index_error set."""
        server = self.cfg("server")
        if not server:
            self.index_error = "ota.server is not set"
            return []
        now = time.ticks_ms()
        if (not force and self.index is not None and self.index_ms is not None
                and time.ticks_diff(now, self.index_ms) < _INDEX_TTL_MS):
            return self.index
        try:
            raw = await _httpc().fetch(server.rstrip("/") + "/index.json", _INDEX_MAX)
            self.index = self.parse_index(raw)
            self.index_error = None
            self.index_ms = now
        except (_httpc().HTTPError, _bundle().BundleError, OSError, ValueError) as e:
            # not cached: the next look retries (the station may just not be up yet)
            self.index_error = "update server: %s" % e
            self.index = self.index or []
        return self.index

    def parse_index(self, raw):
        doc = json.loads(raw)
        signed = doc.get("signed")
        if not isinstance(signed, str):
            raise _bundle().BundleError("index.json has no signed part")
        sig = doc.get("signature")
        if sig:
            keys = self.cfg("keys")
            if not keys:
                raise _bundle().BundleError("no trusted key configured (ota.keys is empty)")
            try:
                sig = bytes.fromhex(sig)
            except ValueError:
                raise _bundle().BundleError("index.json signature is not hex")
            digest = hashlib.sha256(signed.encode()).digest()
            if len(sig) != 256 or not _bundle().rsa_verify(digest, sig, keys):
                raise _bundle().BundleError("index.json: bad signature")
        elif not self.cfg("allow_unsigned"):
            raise _bundle().BundleError("index.json is unsigned (ota.allow_unsigned is off)")
        rels = json.loads(signed).get("releases")
        if not isinstance(rels, list):
            raise _bundle().BundleError("index.json has no release list")
        out = []
        for r in rels:
            if isinstance(r, dict) and isinstance(r.get("version"), str) and r.get("file"):
                out.append(r)
        out.sort(key=lambda r: _bundle().parse_version(r["version"]), reverse=True)
        return out

    async def describe(self):
        rels = await self.releases()
        floor = self.cfg("min_version")
        cur = self.ctx.version
        avail = []
        for r in rels:
            v = r["version"]
            avail.append({"version": v, "size": r.get("size"), "date": r.get("date"),
                          "notes": r.get("notes"), "current": v == cur,
                          "downgrade": _bundle().version_lt(v, cur),
                          "allowed": not _bundle().version_lt(v, floor)})
        doc = self.status()
        doc["progress"] = self.pct()
        try:
            run, nxt = hw.ota_partitions()
            doc["firmware"] = {"running": hw.partition_label(run),
                               "next": hw.partition_label(nxt)}
        except (OSError, ValueError):
            doc["firmware"] = None
        doc.update({"current": cur, "previous": slots.slot_version(slots.load()["previous"]),
                    "available": avail, "index_error": self.index_error,
                    "min_version": floor, "server": self.cfg("server"),
                    "peak_alloc": self.peak_alloc})
        return doc

    # ------------------------------------------------------------ install

    def check_start(self, version=None):
        if self.busy():
            raise ValueError("an update is already running (%s)" % self.state)
        if not self.confirmed and (self.trial or self.fw_trial):
            raise ValueError("version %s is still on trial; wait for it to be confirmed"
                             % self.ctx.version)
        if version is not None:
            floor = self.cfg("min_version")
            if _bundle().version_lt(version, floor):
                raise ValueError("version %s is below ota.min_version %s" % (version, floor))

    def new_reader(self, total):
        # app and firmware bundles share the pipeline; the manifest's type picks the sink
        self.reader = _bundle().Reader(self.cfg("keys"), self.cfg("allow_unsigned"),
                                    self.cfg("min_version"), None, slots.free_bytes(), total)
        return self.reader

    async def resolve(self, version):
        rels = await self.releases(force=True)
        for r in rels:
            if r["version"] == version:
                return r
        if self.index_error:
            raise ValueError(self.index_error)
        raise LookupError("version %s is not on the update server" % version)

    async def install_url(self, url, expect=None):
        """Download and install; `expect` is the index entry (size and sha256 checked too)."""
        self.state = "downloading"
        self.last_error = None
        self.progress = 0
        dl = _httpc().Download(url)
        try:
            await dl.start()
            r = self.new_reader(dl.total or (expect or {}).get("size") or 0)
            h = hashlib.sha256() if expect and expect.get("sha256") else None
            self.peak_alloc = 0
            src = _bundle().Source(dl, None, h, self.sample_heap)

            def check():
                if expect and expect.get("size") not in (None, src.n):
                    raise _bundle().BundleError("size %d differs from index.json (%d)"
                                             % (src.n, expect["size"]))
                if h and h.digest().hex() != expect["sha256"]:
                    raise _bundle().BundleError("sha256 differs from index.json")

            man = await r.run(src, _AutoSink(), check)
        except (_bundle().BundleError, _httpc().HTTPError, OSError, ValueError) as e:
            self.fail(str(e))
            return False
        finally:
            dl.close()
        self.installed(man)
        return True

    def installed(self, man):
        self.state = "rebooting"
        self.progress = 100
        self.reader = None
        _log.info("installed, rebooting into trial", version=man["version"], type=man["type"],
                  previous=self.ctx.version)
        self.ctx.reboot(500)

    def start(self, coro_fn, *args):
        async def job():
            try:
                await coro_fn(*args)
            except Exception as e:
                self.fail("%s: %s" % (type(e).__name__, e))
        self.task = asyncio.create_task(job())

    async def install_version(self, version):
        self.check_start(version)
        self.target = version
        self.state = "downloading"
        self.last_error = None
        self.progress = 0
        try:
            rel = await self.resolve(version)
        except Exception as e:
            self.fail(str(e))
            raise
        url = _httpc().join(self.cfg("server").rstrip("/") + "/index.json", rel["file"])
        self.start(self.install_url, url, rel)

    def install_from_url(self, url):
        self.check_start()
        _httpc().split_url(url)
        self.target = url
        self.state = "downloading"
        self.last_error = None
        self.start(self.install_url, url)

    async def upload(self, request):
        self.check_start()
        n = request.content_length
        if not n:
            raise ValueError("empty upload: send the bundle as the request body")
        self.target = "upload"
        self.state = "installing"
        self.last_error = None
        self.progress = 0
        self.peak_alloc = 0
        src = _bundle().Source(request.stream, n, None, self.sample_heap)
        try:
            man = await self.new_reader(n).run(src, _AutoSink())
        except _bundle().BundleError as e:
            self.fail(str(e))
            # drain so the client reads our answer instead of a reset connection
            await _drain(src)
            return None
        self.installed(man)
        return man

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


def _safe(fn):
    try:
        return bool(fn())
    except Exception:
        return False


async def _drain(src):
    buf = bytearray(512)
    mv = memoryview(buf)
    try:
        while await src.readinto(mv):
            pass
    except Exception:
        pass


def _sink_for(kind):
    if kind == "firmware":
        from perch import fwimage

        return fwimage.PartitionSink()
    return slots.SlotSink()


class _AutoSink:
    # picks the slot writer or the partition writer once the verified manifest names the type
    def __init__(self):
        self.s = None

    def tmp_path(self):
        return slots.ZTMP

    def begin(self, man):
        s = _sink_for(man["type"])
        self.s = s
        self.open, self.write, self.close, self.commit = s.open, s.write, s.close, s.commit
        s.begin(man)

    def abort(self):
        if self.s is not None:
            self.s.abort()
        slots.rmtree(slots.ZTMP)


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
            await o.install_version(v)
            return {"state": o.state, "version": v}
        if isinstance(url, str):
            o.install_from_url(url)
            return {"state": o.state, "url": url}
        raise ValueError("ota needs \"version\" or \"url\"")
    return cmd


def _mqtt_rollback(o):
    async def cmd(doc):
        st = o.rollback("rollback by MQTT command from %s" % o.ctx.version, reboot=False)
        # reboot once the command result has been published
        return {"to": slots.slot_version(st["active"])}, lambda: o.ctx.reboot(500)
    return cmd
