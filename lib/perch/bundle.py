# Streaming reader of Perch bundles (format 1, see README "Bundle format").
#
# One pass over the source with fixed buffers: header, manifest, signature check, then each
# file is copied (or inflated) into a sink while its SHA-256 is computed.  Nothing reaches the
# sink before the signature and the whole manifest have been checked, and the sink only commits
# after every file matched, so a bad bundle never changes what boots.
import asyncio
import hashlib
import json
import os
import sys

import deflate
from micropython import const

_HDR = const(10)
_MAX_MANIFEST = const(16384)
_SIG_LEN = const(256)
_CHUNK = const(2048)  # fixed for any bundle size; small: big blocks are rare in a fragmented heap
_SAMPLE = const(524288)  # heap sample interval: a gc.collect() costs ~1 ms
_MAX_FILES = const(256)
_MAX_PATH = const(96)
_E = const(65537)
# DER prefix of DigestInfo for SHA-256 (RFC 8017 §9.2 note 1)
_DIGEST_INFO = b"\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00\x04\x20"
_TYPES = ("app", "firmware")


class BundleError(Exception):
    pass


def parse_version(s):
    # semver: "1.10.0" > "1.9.9"; a pre-release ("1.2.0-rc1") sorts below its release
    if not isinstance(s, str):
        raise BundleError("version must be a string")
    core, _, pre = s.partition("-")
    parts = core.split(".")
    if len(parts) != 3:
        raise BundleError("bad version %r: need MAJOR.MINOR.PATCH" % s)
    try:
        nums = tuple(int(p) for p in parts)
    except ValueError:
        raise BundleError("bad version %r: need numbers" % s)
    for n in nums:
        if n < 0:
            raise BundleError("bad version %r" % s)
    return nums + ((0, pre) if pre else (1, ""))


def version_lt(a, b):
    return parse_version(a) < parse_version(b)


def running_micropython():
    v = sys.implementation.version
    return (v[0], v[1], v[2])


def key_modulus(k):
    # ota.keys entries are {"n": "<hex modulus>"} (e is always 65537) or the bare hex string
    if isinstance(k, dict):
        k = k.get("n")
    if not isinstance(k, str):
        raise BundleError("ota.keys entry must be {\"n\": hex}")
    try:
        return int(k, 16)
    except ValueError:
        raise BundleError("ota.keys entry is not hex")


def rsa_verify(digest, sig, keys):
    # PKCS#1 v1.5 / SHA-256: s^e mod n must equal 00 01 FF.. 00 DigestInfo digest
    s = int.from_bytes(sig, "big")
    want = b"\x00\x01" + b"\xff" * (_SIG_LEN - 3 - 19 - 32) + b"\x00" + _DIGEST_INFO + digest
    for k in keys:
        n = key_modulus(k)
        if n >> 2047 != 1 or s >= n:
            continue
        if pow(s, _E, n).to_bytes(_SIG_LEN, "big") == want:
            return True
    return False


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


class Source:
    """Async reader over a stream with readinto(); stops after `limit` bytes when given.

    Optionally hashes what passes (h) and calls sample() every _SAMPLE bytes; one layer, as
    every extra coroutine per chunk costs throughput."""

    def __init__(self, stream, limit=None, h=None, sample=None):
        self.stream = stream
        self.ri = getattr(stream, "readinto", None)
        self.left = limit
        self.h = h
        self.sample = sample
        self.n = 0
        self.next = 0

    async def readinto(self, mv):
        if self.left is not None:
            if self.left <= 0:
                return 0
            if len(mv) > self.left:
                mv = mv[: self.left]
        if self.ri is not None:
            n = await self.ri(mv) or 0
        else:
            # microdot hands small bodies over as an AsyncBytesIO, which only has read()
            b = await self.stream.read(len(mv))
            n = len(b)
            mv[:n] = b
        if self.left is not None:
            self.left -= n
        if n and self.h is not None:
            self.h.update(mv[:n])
        self.n += n
        if self.sample is not None and self.n >= self.next:
            self.next = self.n + _SAMPLE
            self.sample()
        return n


class FileSource:
    # Source over a local file, for tests and for installing a bundle already on flash
    def __init__(self, f):
        self.f = f

    async def readinto(self, mv):
        n = self.f.readinto(mv)
        await asyncio.sleep(0)
        return n or 0


class Reader:
    """Validates and unpacks one bundle from `src` into `sink`.

    sink: begin(manifest), open(path, size), write(mv), close(), commit(), abort(),
    and tmp_path() -> a scratch file used to hold compressed data before inflating it.
    Progress: `done` and `total` bytes of the bundle; `stage` names the current step.
    """

    def __init__(self, keys, allow_unsigned=False, min_version="0.0.0", kind="app",
                 max_bytes=0x7FFFFFFF, total=0, buf=None, mpath="app/.m"):
        self.keys = keys or []
        self.allow_unsigned = allow_unsigned
        self.min_version = min_version or "0.0.0"
        self.kind = kind
        self.max_bytes = max_bytes
        self.total = total
        self.done = 0
        self.stage = "header"
        self.manifest = None
        self.mpath = mpath
        self.buf = buf if buf is not None else bytearray(_CHUNK)
        self.mv = memoryview(self.buf)

    async def _fill(self, src, mv):
        got = 0
        n = len(mv)
        while got < n:
            r = await src.readinto(mv[got:])
            if not r:
                raise BundleError("truncated bundle (%s, %d bytes read)" % (self.stage, self.done))
            got += r
            self.done += r

    async def _pump(self, src, left, out, h=None):
        # Move `left` bytes from src to out through the fixed buffer, hashing them if asked.
        mv = self.mv
        while left:
            b = mv[:min(left, _CHUNK)]
            await self._fill(src, b)
            if h is not None:
                h.update(b)
            out.write(b)
            left -= len(b)

    async def run(self, src, sink, check=None):
        try:
            man = await self._head(src)
            self.stage = "files"
            sink.begin(man)
            for ent in man["files"]:
                await self._file(src, sink, ent, man.get("wbits", 10))
            self.stage = "trailer"
            if await src.readinto(self.mv[:1]):
                raise BundleError("trailing data after the last file")
            self.stage = "commit"
            if check:
                check()
            sink.commit()
            self.stage = "done"
            return man
        except BaseException as e:
            try:
                sink.abort()
            except Exception:
                pass
            if isinstance(e, (BundleError, asyncio.CancelledError)):
                raise
            if isinstance(e, OSError):
                raise BundleError("I/O error during %s: %s" % (self.stage, e))
            raise BundleError("%s during %s: %s" % (type(e).__name__, self.stage, e))

    async def _head(self, src):
        mv = self.mv
        await self._fill(src, mv[:_HDR])
        if bytes(mv[:4]) != b"PRCH":
            raise BundleError("not a Perch bundle (bad magic)")
        if mv[4] != 1:
            raise BundleError("unsupported bundle format %d" % mv[4])
        mlen = (mv[6] << 8) | mv[7]
        slen = (mv[8] << 8) | mv[9]
        if not 2 <= mlen <= _MAX_MANIFEST:
            raise BundleError("manifest length %d out of range" % mlen)
        if slen not in (0, _SIG_LEN):
            raise BundleError("signature length %d is not 0 or 256" % slen)
        self.stage = "manifest"
        # The manifest goes through the fixed buffer to a scratch file, not into one
        # manifest-sized block: a long-running board's heap has few large free blocks.
        h = hashlib.sha256()
        with open(self.mpath, "wb") as f:
            await self._pump(src, mlen, f, h)
        digest = h.digest()
        self.stage = "signature"
        if slen:
            sig = mv[:slen]
            await self._fill(src, sig)
            if not self.keys:
                raise BundleError("no trusted key configured (ota.keys is empty)")
            if not rsa_verify(digest, sig, self.keys):
                raise BundleError("bad signature: no trusted key matches")
        elif not self.allow_unsigned:
            raise BundleError("unsigned bundle refused (ota.allow_unsigned is off)")
        self.stage = "manifest"
        try:
            with open(self.mpath) as f:
                man = json.load(f)
        except ValueError:
            raise BundleError("manifest is not valid JSON")
        finally:
            try:
                os.remove(self.mpath)
            except OSError:
                pass
        self._check(man)
        self.manifest = man
        return man

    def _check(self, man):
        if not isinstance(man, dict) or man.get("format") != 1:
            raise BundleError("manifest format is not 1")
        t = man.get("type")
        if t not in _TYPES:
            raise BundleError("unknown bundle type %r" % (t,))
        if self.kind and t != self.kind:
            raise BundleError("wrong bundle type: %s, expected %s" % (t, self.kind))
        ver = man.get("version")
        if version_lt(ver, self.min_version):
            raise BundleError("version %s is below ota.min_version %s" % (ver, self.min_version))
        mp = man.get("micropython", "0.0.0")
        if parse_version(mp)[:3] > running_micropython():
            raise BundleError("needs MicroPython %s, this is %d.%d.%d"
                              % ((mp,) + running_micropython()))
        w = man.get("wbits", 10)
        if not isinstance(w, int) or not 8 <= w <= 12:
            raise BundleError("deflate window wbits=%r out of range 8..12" % (w,))
        files = man.get("files")
        if not isinstance(files, list) or not files or len(files) > _MAX_FILES:
            raise BundleError("manifest file list is empty or too long")
        total = 0
        seen = set()
        for ent in files:
            if not isinstance(ent, dict):
                raise BundleError("bad file entry")
            p = ent.get("path")
            check_path(p)
            if p in seen:
                raise BundleError("duplicate path %s" % p)
            seen.add(p)
            size = ent.get("size")
            z = ent.get("zsize", size)
            if not isinstance(size, int) or not isinstance(z, int) or size < 0 or z < 0:
                raise BundleError("bad size for %s" % p)
            sha = ent.get("sha256")
            if not isinstance(sha, str) or len(sha) != 64:
                raise BundleError("bad sha256 for %s" % p)
            total += size + z
        if total > self.max_bytes:
            raise BundleError("bundle too large: %d bytes, %d available" % (total, self.max_bytes))

    async def _file(self, src, sink, ent, wbits):
        p = ent["path"]
        self.stage = "file " + p
        size = ent["size"]
        h = hashlib.sha256()
        mv = self.mv
        z = ent.get("zsize")
        sink.open(p, size)
        if z is None:
            await self._pump(src, size, sink, h)
        else:
            # DeflateIO pulls from a blocking stream, so park the compressed bytes on flash
            # first (async from the network), then inflate from there in fixed chunks.
            tmp = sink.tmp_path()
            with open(tmp, "wb") as f:
                await self._pump(src, z, f)
            out = 0
            with open(tmp, "rb") as f:
                d = deflate.DeflateIO(f, deflate.RAW, wbits)
                while True:
                    try:
                        n = d.readinto(mv)
                    except (OSError, ValueError):
                        raise BundleError("corrupt compressed data in %s" % p)
                    if not n:
                        break
                    out += n
                    if out > size:
                        raise BundleError("%s inflates beyond its size %d" % (p, size))
                    h.update(mv[:n])
                    sink.write(mv[:n])
                    await asyncio.sleep(0)
            if out != size:
                raise BundleError("%s: size %d, manifest says %d" % (p, out, size))
        if h.digest().hex() != ent["sha256"]:
            raise BundleError("sha256 mismatch in %s" % p)
        sink.close()
