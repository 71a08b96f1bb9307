# The first part of reading a bundle (unpack.Reader): header, manifest parked on flash,
# signature, and a check of every manifest entry before anything is written. Loaded for that
# and dropped before the files are copied, so that its code and the files' do not take the
# heap at the same time; the copy loop then trusts the checked entries.
import hashlib
import json
import sys

from micropython import const

from perch.bundle import BundleError, parse_version, rsa_verify, version_lt
from perch.unpack import MANIFEST

_HDR = const(10)
_FORMAT = const(2)
_MAX_MANIFEST = const(16384)
_SIG_LEN = const(256)
_MAX_FILES = const(256)
_LINE = const(1024)
_MAX_PATH = const(96)


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


def _json(s):
    try:
        d = json.loads(s)
    except ValueError:
        d = None
    if not isinstance(d, dict):
        raise BundleError("manifest is not valid JSON")
    return d


async def head(r, src):
    mv = r.mv
    await r._fill(src, mv[:_HDR])
    if bytes(mv[:4]) != b"PRCH":
        raise BundleError("not a Perch bundle (bad magic)")
    if mv[4] != _FORMAT:
        raise BundleError("unsupported bundle format %d" % mv[4])
    mlen = (mv[6] << 8) | mv[7]
    slen = (mv[8] << 8) | mv[9]
    if not 2 <= mlen <= _MAX_MANIFEST:
        raise BundleError("manifest length %d out of range" % mlen)
    if slen not in (0, _SIG_LEN):
        raise BundleError("signature length %d is not 0 or 256" % slen)
    r.stage = "manifest"
    # The manifest goes through the fixed buffer to flash, and is read back a line at a
    # time: never whole in RAM, however many files it lists.
    h = hashlib.sha256()
    with open(MANIFEST, "wb") as f:
        await r._pump(src, mlen, f, h)
    digest = h.digest()
    r.stage = "signature"
    if slen:
        sig = mv[:slen]
        await r._fill(src, sig)
        if not r.keys:
            raise BundleError("no trusted key configured (ota.keys is empty)")
        r.room = None  # the numbers' place (see ota.blocks)
        if not rsa_verify(digest, sig, r.keys):
            raise BundleError("bad signature: no trusted key matches")
    elif not r.allow_unsigned:
        raise BundleError("unsigned bundle refused (ota.allow_unsigned is off)")
    r.stage = "manifest"
    with open(MANIFEST) as f:
        line = f.readline(_LINE)
        if not line.endswith('"files":[\n'):
            raise BundleError("manifest layout: the first line must end with \"files\":[")
        man = _json(line[:-1] + "]}")
        if man.get("format") != _FORMAT:
            raise BundleError("manifest format is not %d" % _FORMAT)
        t = man.get("type")
        if t not in ("app", "firmware"):
            raise BundleError("unknown bundle type %r" % (t,))
        if r.kind and t != r.kind:
            raise BundleError("wrong bundle type: %s, expected %s" % (t, r.kind))
        ver = man.get("version")
        if version_lt(ver, r.min_version):
            raise BundleError("version %s is below ota.min_version %s"
                              % (ver, r.min_version))
        mp = man.get("micropython", "0.0.0")
        have = sys.implementation.version[:3]
        if parse_version(mp)[:3] > have:
            raise BundleError("needs MicroPython %s, this is %d.%d.%d" % ((mp,) + have))
        w = man.setdefault("wbits", 10)
        if not isinstance(w, int) or not 8 <= w <= 12:
            raise BundleError("deflate window wbits=%r out of range 8..12" % (w,))
        # Every entry is checked before anything is written: one JSON object per line, each
        # but the last ending in a comma, then the closing "]}". No line limit: readline(n)
        # takes n bytes at once, and the manifest (at most _MAX_MANIFEST) passed its
        # signature check already.
        n = total = 0
        last = ""
        comma = None  # whether the previous entry ended in a comma (None before the first)
        while True:
            s = f.readline().rstrip()
            if comma if s == "]}" else comma is False:
                raise BundleError("manifest is not valid JSON")
            if s == "]}":
                break
            comma = s.endswith(",")
            ent = _json(s[:-1] if comma else s)
            p = ent.get("path")
            check_path(p)
            size = ent.get("size")
            z = ent.get("zsize", 0)
            if not isinstance(size, int) or not isinstance(z, int) or size < 0 or z < 0:
                raise BundleError("bad size for %s" % p)
            sha = ent.get("sha256")
            if not isinstance(sha, str) or len(sha) != 64:
                raise BundleError("bad sha256 for %s" % p)
            if p <= last:
                raise BundleError("duplicate or unsorted path %s" % p)
            last = p
            n += 1
            total += size
        if f.read(1) or not 0 < n <= _MAX_FILES:
            raise BundleError("manifest file list is empty, too long or not last")
    if total > r.max_bytes:
        raise BundleError("bundle too large: %d bytes, %d available" % (total, r.max_bytes))
    return man, n
