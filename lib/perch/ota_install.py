# The install side of OTA, loaded on first use so that a board which is not updating keeps
# this RAM: the update server's index, downloads, uploads and the slot/partition sink.
import asyncio
import gc
import hashlib
import json
import time

from micropython import const

from perch import bundle, hw, slots
from perch.ota import installed

_INDEX_MAX = const(16384)


def _httpc():
    # downloads only: an upload does not need the HTTP client in RAM
    from perch import httpc

    return httpc
_INDEX_TTL_MS = const(30000)


async def releases(o, force=False):
    """The update server's release list (cached), or [] with index_error set."""
    server = o.cfg("server")
    if not server:
        o.index_error = "ota.server is not set"
        return []
    now = time.ticks_ms()
    if (not force and o.index is not None and o.index_ms is not None
            and time.ticks_diff(now, o.index_ms) < _INDEX_TTL_MS):
        return o.index
    try:
        raw = await _httpc().fetch(server.rstrip("/") + "/index.json", _INDEX_MAX)
        o.index = parse_index(o, raw)
        o.index_error = None
        o.index_ms = now
    except (_httpc().HTTPError, bundle.BundleError, OSError, ValueError) as e:
        # not cached: the next look retries (the station may just not be up yet)
        o.index_error = "update server: %s" % e
        o.index = o.index or []
    return o.index


def parse_index(o, raw):
    doc = json.loads(raw)
    signed = doc.get("signed")
    if not isinstance(signed, str):
        raise bundle.BundleError("index.json has no signed part")
    sig = doc.get("signature")
    if sig:
        keys = o.cfg("keys")
        if not keys:
            raise bundle.BundleError("no trusted key configured (ota.keys is empty)")
        try:
            sig = bytes.fromhex(sig)
        except ValueError:
            raise bundle.BundleError("index.json signature is not hex")
        digest = hashlib.sha256(signed.encode()).digest()
        if len(sig) != 256 or not bundle.rsa_verify(digest, sig, keys):
            raise bundle.BundleError("index.json: bad signature")
    elif not o.cfg("allow_unsigned"):
        raise bundle.BundleError("index.json is unsigned (ota.allow_unsigned is off)")
    rels = json.loads(signed).get("releases")
    if not isinstance(rels, list):
        raise bundle.BundleError("index.json has no release list")
    out = []
    for r in rels:
        if isinstance(r, dict) and isinstance(r.get("version"), str) and r.get("file"):
            out.append(r)
    out.sort(key=lambda r: bundle.parse_version(r["version"]), reverse=True)
    return out


async def describe(o):
    rels = await releases(o)
    floor = o.cfg("min_version")
    cur = o.ctx.version
    avail = []
    for r in rels:
        v = r["version"]
        app = r.get("type", "app") == "app"
        # firmware images have their own version line: no current/downgrade against the app
        avail.append({"version": v, "type": "app" if app else "firmware",
                      "size": r.get("size"), "date": r.get("date"),
                      "notes": r.get("notes"), "current": app and v == cur,
                      "downgrade": app and bundle.version_lt(v, cur),
                      "allowed": not app or not bundle.version_lt(v, floor)})
    doc = o.status()
    doc["progress"] = o.pct()
    try:
        run, nxt = hw.ota_partitions()
        doc["firmware"] = {"running": hw.partition_label(run),
                           "next": hw.partition_label(nxt)}
    except (OSError, ValueError):
        doc["firmware"] = None
    doc.update({"current": cur, "previous": slots.slot_version(slots.load()["previous"]),
                "available": avail, "index_error": o.index_error,
                "min_version": floor, "server": o.cfg("server"),
                "peak_alloc": o.peak_alloc})
    return doc


def check_start(o, version=None):
    if o.busy():
        raise ValueError("an update is already running (%s)" % o.state)
    if not o.confirmed and (o.trial or o.fw_trial):
        raise ValueError("version %s is still on trial; wait for it to be confirmed"
                         % o.ctx.version)
    if version is not None:
        floor = o.cfg("min_version")
        if bundle.version_lt(version, floor):
            raise ValueError("version %s is below ota.min_version %s" % (version, floor))


def new_reader(o, total, buf=None):
    # app and firmware bundles share the pipeline; the manifest's type picks the sink
    gc.collect()
    o.reader = bundle.Reader(o.cfg("keys"), o.cfg("allow_unsigned"),
                             o.cfg("min_version"), None, slots.free_bytes(), total, buf)
    return o.reader


async def resolve(o, version):
    rels = await releases(o, force=True)
    for r in rels:
        if r["version"] == version:
            return r
    if o.index_error:
        raise ValueError(o.index_error)
    raise LookupError("version %s is not on the update server" % version)


async def install_url(o, url, expect=None):
    """Download and install; `expect` is the index entry (size and sha256 checked too)."""
    o.state = "downloading"
    o.last_error = None
    o.progress = 0
    dl = _httpc().Download(url)
    try:
        await dl.start()
        r = new_reader(o, dl.total or (expect or {}).get("size") or 0, o.take_buffer())
        h = hashlib.sha256() if expect and expect.get("sha256") else None
        o.peak_alloc = 0
        src = bundle.Source(dl, None, h, o.sample_heap)

        def check():
            if expect and expect.get("size") not in (None, src.n):
                raise bundle.BundleError("size %d differs from index.json (%d)"
                                         % (src.n, expect["size"]))
            if h and h.digest().hex() != expect["sha256"]:
                raise bundle.BundleError("sha256 differs from index.json")

        man = await r.run(src, _AutoSink(), check)
    except (bundle.BundleError, _httpc().HTTPError, OSError, ValueError) as e:
        o.fail(str(e))
        return False
    finally:
        dl.close()
    installed(o, man)
    return True


def start(o, coro_fn, *args):
    async def job():
        try:
            await coro_fn(*args)
        except Exception as e:
            o.fail("%s: %s" % (type(e).__name__, e))
    o.task = asyncio.create_task(job())


async def install_version(o, version):
    check_start(o, version)
    o.target = version
    o.state = "downloading"
    o.last_error = None
    o.progress = 0
    try:
        rel = await resolve(o, version)
    except Exception as e:
        o.fail(str(e))
        raise
    url = _httpc().join(o.cfg("server").rstrip("/") + "/index.json", rel["file"])
    start(o, install_url, o, url, rel)


def install_from_url(o, url):
    check_start(o)
    _httpc().split_url(url)
    o.target = url
    o.state = "downloading"
    o.last_error = None
    start(o, install_url, o, url)


async def upload(o, request, buf=None):
    check_start(o)
    n = request.content_length
    if not n:
        raise ValueError("empty upload: send the bundle as the request body")
    o.target = "upload"
    o.state = "installing"
    o.last_error = None
    o.progress = 0
    o.peak_alloc = 0
    src = bundle.Source(request.stream, n, None, o.sample_heap)
    mv = None
    try:
        r = new_reader(o, n, buf)
        mv = r.mv
        man = await r.run(src, _AutoSink())
    except (bundle.BundleError, MemoryError) as e:
        o.fail(str(e) if isinstance(e, bundle.BundleError) else "not enough memory to install")
        # drain so the client reads our answer instead of a reset connection
        await _drain(src, mv)
        return None
    installed(o, man)
    return man


def firmware_boot(o, st):
    from perch import fwimage

    fw = fwimage.pending()
    try:
        running = hw.partition_label(hw.ota_partitions()[0])
    except (OSError, ValueError):
        running = None
    if fw and running == fw.get("label"):
        o.fw_trial = fw  # first boots of a new image: confirm it or the bootloader reverts
        return
    fwimage.clear_pending()
    if fw:
        st["reason"] = o.reason = ("firmware %s was not confirmed; the bootloader went "
                                      "back to %s" % (fw.get("version"), running))
        slots.save(st)


async def _drain(src, mv=None):
    try:
        if mv is None:
            mv = memoryview(bytearray(256))
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
