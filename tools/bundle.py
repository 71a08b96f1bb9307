"""Bundle format 1 (see README, "Bundle format"): write and read on the host."""

import hashlib
import json
import struct
import zlib

MAGIC = b"PRCH"
FORMAT = 1
HEADER = struct.Struct(">4sBBHH")


class BundleError(Exception):
    pass


def _deflate(data):
    # Raw deflate (no zlib header), window 2**10 so the board inflates with a 1 KB window.
    c = zlib.compressobj(9, zlib.DEFLATED, -10)
    return c.compress(data) + c.flush()


def pack(files, version, kind="app", micropython="1.22.0", sign=None, compress=True):
    """files: [(path, bytes)]. sign: callable(manifest_bytes) -> signature bytes, or None."""
    entries, blobs = [], []
    for path, data in files:
        entry = {"path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        if compress:
            z = _deflate(data)
            if len(z) < len(data):
                entry["zsize"] = len(z)
                data = z
        entries.append(entry)
        blobs.append(data)
    manifest = json.dumps({"format": FORMAT, "type": kind, "version": version,
                           "micropython": micropython, "files": entries},
                          separators=(",", ":")).encode()
    sig = sign(manifest) if sign else b""
    head = HEADER.pack(MAGIC, FORMAT, 0, len(manifest), len(sig))
    return head + manifest + sig + b"".join(blobs)


def unpack(blob):
    """Return (manifest dict, manifest bytes, signature, {path: data}), checking hashes."""
    if len(blob) < HEADER.size:
        raise BundleError("truncated header")
    magic, fmt, _, mlen, slen = HEADER.unpack_from(blob)
    if magic != MAGIC or fmt != FORMAT:
        raise BundleError("not a Perch bundle of format %d" % FORMAT)
    pos = HEADER.size
    mbytes = blob[pos:pos + mlen]
    sig = blob[pos + mlen:pos + mlen + slen]
    pos += mlen + slen
    manifest = json.loads(mbytes)
    files = {}
    for e in manifest["files"]:
        n = e.get("zsize", e["size"])
        data = blob[pos:pos + n]
        pos += n
        if len(data) != n:
            raise BundleError("truncated at " + e["path"])
        if "zsize" in e:
            data = zlib.decompress(data, -15)
        if len(data) != e["size"] or hashlib.sha256(data).hexdigest() != e["sha256"]:
            raise BundleError("hash mismatch: " + e["path"])
        files[e["path"]] = data
    return manifest, mbytes, sig, files
