# Perch bundles (format 2, see README "Bundle format"): versions and the signature check,
# which the version list needs too. Reading a bundle is unpack.py.
from micropython import const

from perch.unpack import BundleError  # noqa: F401 (bundle.BundleError for its users)

_SIG_LEN = const(256)
_E = const(65537)
# DER prefix of DigestInfo for SHA-256 (RFC 8017 §9.2 note 1)
_DIGEST_INFO = b"\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00\x04\x20"


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


def rsa_verify(digest, sig, keys):
    # PKCS#1 v1.5 / SHA-256: s^e mod n must equal 00 01 FF.. 00 DigestInfo digest.
    # ota.keys entries are {"n": "<hex modulus>"} (e is always 65537) or the bare hex string.
    # the expected block is built after the numbers are gone: not beside them at the peak
    s = int.from_bytes(sig, "big")
    for k in keys:
        if isinstance(k, dict):
            k = k.get("n")
        try:
            n = int(k, 16)
        except (TypeError, ValueError):
            raise BundleError('ota.keys entry must be {"n": hex}')
        if n >> 2047 != 1 or s >= n:
            continue
        m = pow(s, _E, n).to_bytes(_SIG_LEN, "big")
        if m == b"\x00\x01" + b"\xff" * (_SIG_LEN - 3 - 19 - 32) + b"\x00" + _DIGEST_INFO + digest:
            return True
    return False
