# The second part of reading a bundle (unpack.Reader), loaded once unpack_list has checked the
# header, the signature and every manifest entry, and dropped with the reader: each file is
# copied or inflated into the sink while its SHA-256 is computed, then the sink commits.
import gc
import hashlib
import io
import json

import deflate
from micropython import const

from perch.unpack import MANIFEST, BundleError

_BLOCK = const(2048)  # a compressed file is deflate streams of 2048 bytes each (last shorter)
_ZMAX = const(2112)  # largest compressed block: 2048 random bytes deflate to ~2100
_WINDOW = const(1024)  # the inflater's window (1 << wbits: 10 in our bundles), see _inflate
_STATE = const(1336)  # and its state (64-bit)


def _take(r):
    # The inflater's blocks, once the header's code and the signature check's numbers are
    # gone (into the run ota.blocks kept free for both): the compressed block, and room, a
    # place kept for the inflater's state and window until the first block (the sink's code
    # loads in between). Not in run(): MicroPython's GC sees a coroutine's stale stack
    # slots, and room must be free once _inflate lets go of it.
    r.room = None
    gc.collect()
    # the inflater's place first: it has no way round a full heap, the block has
    try:
        r.room = (bytearray(_STATE), bytearray(_WINDOW))  # the larger first
    except MemoryError:
        pass  # the inflater may still find its place
    try:
        r.bio = io.BytesIO(_ZMAX)
    except MemoryError:
        # no 2 KB run left: each compressed block is parked on flash instead (slower, so
        # only then); unpack.run closes and removes it
        r.bio = open(MANIFEST + "z", "w+b")


async def run(r, src, make_sink, man, nfiles, check):
    r.stage = "files"
    _take(r)
    if r.sample:
        r.sample()
    r.sink = sink = make_sink(man)
    sink.begin(man, nfiles)
    with open(MANIFEST) as f:
        f.readline()  # checked by unpack_list, like every entry
        while True:
            s = f.readline().rstrip()
            if s == "]}":
                break
            ent = json.loads(s[:-1] if s[-1] == "," else s)
            p = ent["path"]
            r.stage = "file " + p
            left = ent["size"]
            h = hashlib.sha256()
            sink.open(p, left)
            if "zsize" in ent:
                await _inflate(r, src, left, ent["zsize"], sink, h, man["wbits"])
            else:
                await r._pump(src, left, sink, h)
            if h.digest().hex() != ent["sha256"]:
                raise BundleError("sha256 mismatch in %s" % p)
            sink.close()
    r.stage = "trailer"
    b = r.mv[:1]
    n = src.readinto(b)
    if n is None:
        n = await src.wait(b)
    if n:
        raise BundleError("trailing data after the last file")
    r.stage = "commit"
    if check:
        check()
    sink.commit(MANIFEST)
    r.stage = "done"
    return man


async def _inflate(r, src, left, z, out, h, wbits):
    # Each block is a length (u16 BE) and a raw deflate stream of up to _BLOCK bytes: it is
    # read whole into a small BytesIO and inflated from there, as DeflateIO can only pull
    # from a blocking stream and reads it one byte per call.
    mv = r.mv
    c = len(mv)
    bio = r.bio
    bad = BundleError("corrupt compressed data in %s" % r.stage[5:])
    while left:
        await r._fill(src, mv[:2])
        zl = mv[0] << 8 | mv[1]
        z -= zl + 2
        if zl > _ZMAX or z < 0:
            raise bad
        bio.seek(0)
        while zl:
            k = min(zl, c)
            await r._fill(src, mv[:k])
            bio.write(mv[:k])
            zl -= k
        bio.seek(0)
        # The inflater's state and window (~1.9 KB on 64-bit, two blocks) go where room was,
        # or where the last block's were: a failed allocation collects, which frees them.
        r.room = None
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
        # kept till the next block's are made (r.room = None above): freed during the awaits
        # till then, their place could go to another task and the next block find none
        r.room = d
        del d
    # the file is done: a stored file may follow, which needs no inflater (and, left alive,
    # stale references to it made the live heap differ by one inflater from run to run)
    r.room = None
    if z:
        raise bad
