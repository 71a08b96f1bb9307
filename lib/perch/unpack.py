# Streaming reader of Perch bundles (format 2, see README "Bundle format"): the reader's state,
# its copy loop, and its three parts, each loaded only while it runs: unpack_head (header,
# manifest, signature), unpack_list (every manifest entry checked), then unpack_body (files).
# The writer of an app slot is slotwrite.
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
import os

from micropython import const

from perch.config import drop, lazy

_CHUNK = const(2048)
_TICK = const(16384)  # yield to the event loop at least this often while data keeps coming
_SAMPLE = const(1048576)  # heap sample interval: a gc.collect() costs 1-2 ms
MANIFEST = "app/.m"  # the manifest while installing; an app install renames it into the slot


class BundleError(Exception):
    # here, not in bundle.py, which only the header needs (see run)
    pass


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
        self.room = self.bio = None
        self.stage = "header"
        self.mv = memoryview(buf if buf is not None else bytearray(_CHUNK))

    def _short(self):
        return BundleError("truncated bundle (%s, %d bytes read)" % (self.stage, self.done))

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
        self.sink = None
        try:
            # each part's code only while it runs: the header and signature, the manifest's
            # entries, then the files
            await lazy("unpack_head").head(self, src)
            man, nfiles = lazy("unpack_list").check(self)
            drop("bundle")  # versions and the signature check: not needed for the files
            return await lazy("unpack_body").run(self, src, make_sink, man, nfiles, check)
        except BaseException as e:
            try:
                if self.sink is not None:
                    self.sink.abort()
            except Exception:
                pass
            if isinstance(e, (BundleError, asyncio.CancelledError)):
                raise
            if isinstance(e, OSError):
                raise BundleError("I/O error during %s: %s" % (self.stage, e))
            raise BundleError("%s during %s: %s" % (type(e).__name__, self.stage, e))
        finally:
            if self.bio:
                self.bio.close()  # the compressed blocks' file, if they had to go there
                self.bio = None
            for p in (MANIFEST, MANIFEST + "z"):
                try:
                    os.remove(p)
                except OSError:
                    pass


def free_bytes():
    try:
        s = os.statvfs(".")
        return max(0, s[0] * s[4] - 16384)  # keep a margin for the state and config files
    except (OSError, AttributeError):
        return 0x7FFFFFFF
