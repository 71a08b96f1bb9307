# Streaming reader of Perch bundles (format 2, see README "Bundle format"); its first part
# (header, manifest, signature) is unpack_head, the writer of an app slot slotwrite.
#
# One pass over the source with one fixed buffer: header, manifest (parked on flash, read back
# one line, so one file entry, at a time), signature check, then each file is copied or
# inflated into a sink while its SHA-256 is computed. Nothing reaches the sink before the
# signature and the whole manifest have been checked, and the sink only commits after every
# file matched, so a bad bundle never changes what boots.
#
# A source has readinto(mv) -> bytes read now, 0 at the end, or None when it would block, and
# async wait(mv), which waits for some: the copy loop calls no coroutine while data is there.
import asyncio
import gc
import hashlib
import io
import json
import os

import deflate
from micropython import const

from perch.bundle import BundleError
from perch.config import lazy

_CHUNK = const(2048)
_BLOCK = const(2048)  # a compressed file is deflate streams of 2048 bytes each (last shorter)
_ZMAX = const(2112)  # largest compressed block: 2048 random bytes deflate to ~2100
_ROOM = const(1888)  # the inflater's state and window (64-bit), see _inflate
_TICK = const(16384)  # yield to the event loop at least this often while data keeps coming
_SAMPLE = const(1048576)  # heap sample interval: a gc.collect() costs 1-2 ms
_MAX_PATH = const(96)
MANIFEST = "app/.m"  # the manifest while installing; an app install renames it into the slot


def check_path(p):
    if not isinstance(p, str) or not p or len(p) > _MAX_PATH:
        raise BundleError("bad file path %r" % (p,))
    if p[0] == "/" or "\\" in p or ":" in p:
        raise BundleError("absolute path refused: %s" % p)
    for part in p.split("/"):
        if part in ("", ".", ".."):
            raise BundleError("path leaves the slot: %s" % p)
    if p == "boot.py" or p == "manifest.json":
        raise BundleError("bundle may not replace %s" % p)


class Reader:
    """Validates and unpacks one bundle from a source into the sink that make_sink(header)
    returns: begin(header, nfiles), open(path, size), write(mv), close(), commit(manifest
    path), abort(). Progress: `done` and `total` bytes of the bundle; `stage` names the step;
    sample(), when set, is called at the start of the files and every _SAMPLE bytes."""

    def __init__(self, keys, allow_unsigned=False, min_version="0.0.0", kind="app",
                 max_bytes=0x7FFFFFFF, total=0, buf=None):
        self.keys = keys or []
        self.allow_unsigned = allow_unsigned
        self.min_version = min_version or "0.0.0"
        self.kind = kind
        self.max_bytes = max_bytes
        self.total = total
        self.done = 0
        self.mark = _TICK
        self.next = _SAMPLE
        self.sample = None
        self.bio = self.room = None
        self.stage = "header"
        self.mv = memoryview(buf if buf is not None else bytearray(_CHUNK))

    def _short(self):
        return BundleError("truncated bundle (%s, %d bytes read)" % (self.stage, self.done))

    def _take(self):
        # what the caller could not take before (ota.blocks). Not in run(): MicroPython's GC
        # sees a coroutine's stale stack slots, and room must be free once _inflate lets go.
        self.bio = io.BytesIO(_ZMAX)
        self.room = bytearray(_ROOM)

    async def _tick(self):
        # the copy loop never waits while the socket has data: let the other tasks run
        self.mark = self.done + _TICK
        if self.done >= self.next and self.sample:
            self.next = self.done + _SAMPLE
            self.sample()
        await asyncio.sleep(0)

    async def _fill(self, src, b):
        # exactly len(b) bytes into b
        got = 0
        while got < len(b):
            m = b[got:] if got else b
            n = src.readinto(m)
            if n is None:
                n = await src.wait(m)
            if not n:
                raise self._short()
            got += n
            self.done += n
        if self.done >= self.mark:
            await self._tick()

    async def _pump(self, src, left, out, h):
        # Move `left` bytes from src to out, hashing them: the hot loop of every install.
        mv = self.mv
        c = len(mv)
        while left:
            b = mv if left >= c else mv[:left]
            n = src.readinto(b)
            if n is None:
                n = await src.wait(b)
            if not n:
                raise self._short()
            if n < len(b):
                b = b[:n]
            h.update(b)
            out.write(b)
            left -= n
            self.done += n
            if self.done >= self.mark:
                await self._tick()

    async def run(self, src, make_sink, check=None):
        sink = None
        try:
            # the header, manifest and signature code is only needed till the files start
            man, nfiles = await lazy("unpack_head").head(self, src)
            self.stage = "files"
            if self.bio is None:
                gc.collect()
                self._take()
            if self.sample:
                self.sample()
            sink = make_sink(man)
            sink.begin(man, nfiles)
            with open(MANIFEST) as f:
                f.readline()  # checked by unpack_head
                self.comma = None
                while True:
                    ent = self._entry(f)
                    if ent is None:
                        break
                    p = ent["path"]
                    self.stage = "file " + p
                    left = ent["size"]
                    h = hashlib.sha256()
                    sink.open(p, left)
                    if "zsize" in ent:
                        await self._inflate(src, left, ent["zsize"], sink, h, man["wbits"])
                    else:
                        await self._pump(src, left, sink, h)
                    if h.digest().hex() != ent["sha256"]:
                        raise BundleError("sha256 mismatch in %s" % p)
                    sink.close()
            self.stage = "trailer"
            b = self.mv[:1]
            n = src.readinto(b)
            if n is None:
                n = await src.wait(b)
            if n:
                raise BundleError("trailing data after the last file")
            self.stage = "commit"
            if check:
                check()
            sink.commit(MANIFEST)
            self.stage = "done"
            return man
        except BaseException as e:
            try:
                if sink is not None:
                    sink.abort()
            except Exception:
                pass
            if isinstance(e, (BundleError, asyncio.CancelledError)):
                raise
            if isinstance(e, OSError):
                raise BundleError("I/O error during %s: %s" % (self.stage, e))
            raise BundleError("%s during %s: %s" % (type(e).__name__, self.stage, e))
        finally:
            try:
                os.remove(MANIFEST)
            except OSError:
                pass

    def _json(self, s):
        try:
            d = json.loads(s)
        except ValueError:
            d = None
        if not isinstance(d, dict):
            raise BundleError("manifest is not valid JSON")
        return d

    def _entry(self, f):
        # The next file entry, one JSON object per line, or None at the closing "]}".
        # self.comma: whether the previous entry ended in a comma (None before the first).
        # No limit: readline(n) takes n bytes at once, and the manifest (at most
        # _MAX_MANIFEST) was checked against its signature before any entry is read.
        s = f.readline().rstrip()
        if self.comma if s == "]}" else self.comma is False:
            raise BundleError("manifest is not valid JSON")
        if s == "]}":
            return None
        self.comma = s.endswith(",")
        ent = self._json(s[:-1] if self.comma else s)
        p = ent.get("path")
        check_path(p)
        size = ent.get("size")
        z = ent.get("zsize", 0)
        if not isinstance(size, int) or not isinstance(z, int) or size < 0 or z < 0:
            raise BundleError("bad size for %s" % p)
        sha = ent.get("sha256")
        if not isinstance(sha, str) or len(sha) != 64:
            raise BundleError("bad sha256 for %s" % p)
        return ent

    async def _inflate(self, src, left, z, out, h, wbits):
        # Each block is a length (u16 BE) and a raw deflate stream of up to _BLOCK bytes:
        # it is read whole into a small BytesIO and inflated from there, as DeflateIO can
        # only pull from a blocking stream and reads it one byte per call.
        mv = self.mv
        c = len(mv)
        bio = self.bio or io.BytesIO(_ZMAX)  # (run() took it)
        bad = BundleError("corrupt compressed data in %s" % self.stage[5:])
        while left:
            await self._fill(src, mv[:2])
            zl = mv[0] << 8 | mv[1]
            z -= zl + 2
            if zl > _ZMAX or z < 0:
                raise bad
            bio.seek(0)
            while zl:
                k = min(zl, c)
                await self._fill(src, mv[:k])
                bio.write(mv[:k])
                zl -= k
            bio.seek(0)
            # The inflater's state and window (~1.9 KB on 64-bit, two blocks) go where room
            # was (also the signature check's numbers), or where the last block's were: a
            # failed allocation collects, which frees them.
            self.room = None
            d = deflate.DeflateIO(bio, deflate.RAW, wbits)
            k = min(left, _BLOCK)
            left -= k
            while k:
                b = mv[:min(k, c)]
                try:
                    n = d.readinto(b)
                except (OSError, ValueError, EOFError):
                    n = 0
                if n != len(b):
                    raise bad
                h.update(b)
                out.write(b)
                k -= n
            del d
        if z:
            raise bad


def free_bytes():
    try:
        s = os.statvfs(".")
        return max(0, s[0] * s[4] - 16384)  # keep a margin for the state and config files
    except (OSError, AttributeError):
        return 0x7FFFFFFF
