# The second part of reading a bundle (unpack.Reader): the signed manifest read back from
# flash, one line (one file entry) at a time, and every entry checked before anything is
# written; the copy loop (unpack_body) then trusts them. Loaded once the signature is checked.
import json
import sys

from micropython import const

from perch.bundle import BundleError, parse_version, version_lt
from perch.unpack import MANIFEST

_FORMAT = const(2)
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


# _first and _entries are apart for the heap: each function's bytecode loads as one block,
# and a smaller largest block fits the holes of a busy heap.
def _first(r, line):
    # the manifest's first line: everything but the file list
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
        raise BundleError("version %s is below ota.min_version %s" % (ver, r.min_version))
    mp = man.get("micropython", "0.0.0")
    have = sys.implementation.version[:3]
    if parse_version(mp)[:3] > have:
        raise BundleError("needs MicroPython %s, this is %d.%d.%d" % ((mp,) + have))
    w = man.setdefault("wbits", 10)
    if not isinstance(w, int) or not 8 <= w <= 12:
        raise BundleError("deflate window wbits=%r out of range 8..12" % (w,))
    return man


def _entries(f):
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
    return n, total


def check(r):
    """The manifest's header fields and the number of files, once every entry passed."""
    r.stage = "manifest"
    with open(MANIFEST) as f:
        man = _first(r, f.readline(_LINE))
        n, total = _entries(f)
    if total > r.max_bytes:
        raise BundleError("bundle too large: %d bytes, %d available" % (total, r.max_bytes))
    return man, n
