# The first part of reading a bundle (unpack.Reader): the header, the manifest parked on flash
# while it is hashed, and the signature. Loaded for that and dropped before the manifest is
# read back (unpack_list): the signature check's numbers and the code around them are the
# install's peak, so nothing else loads beside them.
import hashlib

from micropython import const

from perch.bundle import BundleError, rsa_verify
from perch.unpack import MANIFEST

_HDR = const(10)
_FORMAT = const(2)
_MAX_MANIFEST = const(16384)
_SIG_LEN = const(256)


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
        # the numbers' place: the largest run (see ota.blocks); the others stay taken, or the
        # code loaded till unpack_body._take would go there
        r.room = r.room[1:] if r.room else None
        if not rsa_verify(digest, sig, r.keys):
            raise BundleError("bad signature: no trusted key matches")
    elif not r.allow_unsigned:
        raise BundleError("unsigned bundle refused (ota.allow_unsigned is off)")
