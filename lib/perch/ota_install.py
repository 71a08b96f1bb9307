# An install, loaded per use and dropped after (ota.drop): the upload route, and the steps
# an install by download (httpc) shares with it. Only what an upload runs is here; the reader
# is unpack, firmware images fwimage.
import gc

from perch.ota import BUSY, LOG, blocks
from perch.replay import Replay as _Replay
from perch.unpack import BundleError
from perch.web import json_error


def check(o, version=None):
    if o.state in BUSY:
        raise ValueError("an update is already running (%s)" % o.state)
    if not o.confirmed and (o.trial or o.fw_trial):
        raise ValueError("version %s is still on trial; wait for it to be confirmed"
                         % o.ctx.version)
    if version is not None:
        floor = o.ctx.cfg["ota.min_version"]
        from perch.bundle import version_lt

        if version_lt(version, floor):
            raise ValueError("version %s is below ota.min_version %s" % (version, floor))


def begin(o, target, state):
    o.target = target
    o.state = state
    o.last_error = None
    o.progress = 0
    o.peak_alloc = 0
    q = getattr(o.ctx, "quiet", None)  # telemetry's: MQTT gives its RAM to the install
    if q:
        q(True)


def fail(o, msg):
    o.state = "error"
    o.last_error = msg
    o.reader = None
    LOG.error("update failed", error=msg, target=o.target)
    q = getattr(o.ctx, "quiet", None)  # MQTT back, the readings kept meanwhile replayed
    if q:
        q(False)


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


def reader(o, total, b=None):
    # App and firmware bundles share the pipeline; the manifest's type picks the sink.
    # b: what ota.blocks() took before this code loaded.
    b = b or blocks()
    buf = b.pop(0) if b and len(b[0]) == 1024 else bytearray(512)
    room = b[:]
    b.clear()  # the reader owns them now: room must be free once it lets go of it
    _sample(o)
    from perch import unpack  # (loaded already, for BundleError)

    cfg = o.ctx.cfg
    r = unpack.Reader(cfg["ota.keys"], cfg["ota.allow_unsigned"], cfg["ota.min_version"],
                      None, unpack.free_bytes(), total, buf)
    r.room = room
    r.sample = lambda: _sample(o)
    o.reader = r
    return r


def sink(man):
    if man["type"] == "firmware":
        from perch import fwimage

        return fwimage.PartitionSink()
    from perch import slotwrite

    return slotwrite.SlotSink()


async def upload(o, req, b):
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
        man = await reader(o, n, b).run(src, sink)
    except ValueError as e:
        return json_error(409 if o.state in BUSY else 400, str(e))
    except (BundleError, MemoryError) as e:
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
    except BaseException:
        # cancelled with the connection: the state must not stay "installing", nor MQTT quiet
        if o.state == "installing":
            fail(o, "upload interrupted")
        raise
    installed(o, man)
    return {"version": man["version"], "state": o.state, "rebooting": True}
