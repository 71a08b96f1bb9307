# The work behind OTA's routes and MQTT commands, loaded per use and dropped after (ota.drop):
# uploads, rollback and the firmware page's forms. The version list and installs from the
# update server are in httpc, the page's HTML in ota_page, firmware images in fwimage.
import gc
import io

from microdot import Response

from perch import bundle, slots
from perch.ota import BUSY, LOG
from perch.pages import html
from perch.replay import Replay as _Replay
from perch.web import body_json, json_error


def _ota_page():
    # Collect first: the page code then loads into one compact run of the heap.
    gc.collect()
    from perch import ota_page

    return ota_page


def _httpc():
    from perch import httpc

    return httpc


async def handle(o, req, p):
    post = req.method == "POST"
    if p == "api/ota":
        return await describe(o) if not post else 405
    if p == "firmware":
        return html(await _ota_page().firmware_page(o.ctx, o)) if not post else 405
    if not post:
        return 405 if p in ("api/ota/install", "api/ota/upload", "api/ota/rollback",
                            "firmware/install", "firmware/rollback") else 404
    if p == "api/ota/upload":
        return await _upload(o, req)
    if p == "api/ota/install":
        try:
            doc = body_json(req)
            await _httpc().install(o, doc.get("version"), doc.get("url"))
        except LookupError as e:
            return json_error(404, str(e))
        except Exception as e:
            return json_error(409 if o.state in BUSY else 400, str(e))
        return {"state": o.state, "target": o.target}, 202
    if p == "api/ota/rollback":
        try:
            st = rollback(o, "manual rollback from %s" % o.ctx.version)
        except (OSError, ValueError) as e:
            return json_error(409, str(e))
        return {"state": o.state, "to": slots.slot_version(st["active"])}, 202
    form = req.form or {}
    try:
        if p == "firmware/install":
            v = form.get("version") or ""
            if bundle.version_lt(v, o.ctx.version) and not form.get("confirm"):
                return html(_ota_page().confirm_page(o.ctx, v))
            await _httpc().install(o, v, None)
        elif p == "firmware/rollback":
            rollback(o, "manual rollback from %s" % o.ctx.version)
        else:
            return 404
    except Exception as e:
        return html(await _ota_page().firmware_page(o.ctx, o, str(e)),
                    409 if p == "firmware/rollback" else 400)
    return Response("", 303, {"Location": "/firmware"})


async def command(o, doc):
    # MQTT: {"cmd": "ota", "version" or "url"} and {"cmd": "rollback"}
    if doc["cmd"] == "rollback":
        st = rollback(o, "rollback by MQTT command from %s" % o.ctx.version, False)
        # reboot once the command result has been published
        return {"to": slots.slot_version(st["active"])}, lambda: o.ctx.reboot(500)
    v = doc.get("version")
    url = doc.get("url")
    await _httpc().install(o, v, url)
    return {"state": o.state, "version": v} if isinstance(v, str) else {"state": o.state,
                                                                          "url": url}


async def describe(o):
    # the status document of GET /api/ota (and the firmware page): mostly the version list
    return await _httpc().describe(o)


def check(o, version=None):
    if o.state in BUSY:
        raise ValueError("an update is already running (%s)" % o.state)
    if not o.confirmed and (o.trial or o.fw_trial):
        raise ValueError("version %s is still on trial; wait for it to be confirmed"
                         % o.ctx.version)
    if version is not None:
        floor = o.ctx.cfg["ota.min_version"]
        if bundle.version_lt(version, floor):
            raise ValueError("version %s is below ota.min_version %s" % (version, floor))


def begin(o, target, state):
    o.target = target
    o.state = state
    o.last_error = None
    o.progress = 0
    o.peak_alloc = 0


def fail(o, msg):
    o.state = "error"
    o.last_error = msg
    o.reader = None
    LOG.error("update failed", error=msg, target=o.target)


def installed(o, man):
    o.state = "rebooting"
    o.progress = 100
    o.reader = None
    LOG.info("installed, rebooting into trial", version=man["version"], type=man["type"],
             previous=o.ctx.version)
    o.ctx.reboot(500)


def _sample(o):
    # live heap (after a collection), sampled during installs: it must not grow with size
    gc.collect()
    a = gc.mem_alloc()
    if a > o.peak_alloc:
        o.peak_alloc = a


def reader(o, total):
    # App and firmware bundles share the pipeline; the manifest's type picks the sink. The two
    # 2 KB blocks are taken first, after a collection, while the heap still has such blocks;
    # the code loads after, into smaller holes. The buffer may be smaller in a fragmented heap.
    gc.collect()
    _sample(o)
    bio = io.BytesIO(2112)  # one compressed block (unpack._ZMAX)
    buf = None
    for n in (2048, 1024, 512):
        try:
            buf = bytearray(n)
            break
        except MemoryError:
            pass
    from perch import unpack

    cfg = o.ctx.cfg
    r = unpack.Reader(cfg["ota.keys"], cfg["ota.allow_unsigned"], cfg["ota.min_version"],
                      None, unpack.free_bytes(), total, buf)
    r.bio = bio
    r.sample = lambda: _sample(o)
    o.reader = r
    return r


def sink(man):
    if man["type"] == "firmware":
        from perch import fwimage

        return fwimage.PartitionSink()
    from perch import unpack

    return unpack.SlotSink()


async def _upload(o, req):
    n = req.content_length
    src = None
    try:
        check(o)
        if not n:
            raise ValueError("empty upload: send the bundle as the request body")
        begin(o, "upload", "installing")
        # microdot keeps a small body in memory; a large one is left on the socket
        src = _Replay(req.body, None) if req.body else req.stream
        src.left = n
        man = await reader(o, n).run(src, sink)
    except ValueError as e:
        return json_error(409 if o.state in BUSY else 400, str(e))
    except (bundle.BundleError, MemoryError) as e:
        nomem = isinstance(e, MemoryError)
        fail(o, "not enough memory to install" if nomem else str(e))
        if src is not None:
            # drain so the client reads our answer instead of a reset connection
            try:
                b = memoryview(bytearray(256))
                while src.left:
                    k = src.readinto(b)
                    if k is None:
                        k = await src.wait(b)
                    if not k:
                        break
            except Exception:
                pass
        return json_error(503 if nomem else 400, o.last_error, state=o.state)
    installed(o, man)
    return {"version": man["version"], "state": o.state, "rebooting": True}


def rollback(o, why, reboot=True):
    """Make the previous slot active again; it was confirmed before, so it is not on trial."""
    if o.state in BUSY:
        raise ValueError("an update is running (%s)" % o.state)
    st = slots.load()
    prev = st["previous"]
    if not prev or slots.slot_version(prev) is None:
        raise OSError("no previous version to roll back to")
    st["previous"] = st["active"]
    st["active"] = prev
    st["trial"] = False
    st["tries"] = 0
    st["crashes"] = 0
    st["reason"] = why
    slots.save(st)
    o.state = "rebooting"
    LOG.warning("rolling back", to=slots.slot_version(prev), reason=why)
    if reboot:
        o.ctx.reboot(500)
    return st
