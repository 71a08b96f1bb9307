"""Perch bundle builder (host side).

Bundle format 2 (see README "Bundle format"):

    b"PRCH" | u8 format=2 | u8 flags=0 | u16 manifest_len (BE) | u16 sig_len (BE, 0 or 256)
    manifest (UTF-8 JSON, one file entry per line) | signature (sig_len bytes)
    file data in manifest order: raw, or when the entry has "zsize" a series of blocks, each a
    u16 BE length and a raw deflate stream of the next 2048 bytes of the file

The signature is RSA-2048 PKCS#1 v1.5 over SHA-256 of the manifest bytes.  Compressed files use
a small deflate window (``wbits`` in the manifest) and small blocks, so the device inflates
with ~3 KB of RAM and straight from the network.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import struct
import sys
import zlib
from pathlib import Path
from typing import Callable

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

MAGIC = b"PRCH"
FORMAT = 2
WBITS = 9  # 512-byte window: the device allocates 2**WBITS bytes to inflate
BLOCK = 2048  # raw bytes per compressed block: the device holds one compressed block
ZMAX = 2112  # the device refuses larger compressed blocks (2048 random bytes take ~2100)
DEFAULT_MICROPYTHON = "1.22.0"
PRIVATE_NAME = "perch-signing.pem"
PUBLIC_NAME = "perch-signing.pub.pem"
CONFIG_KEY_NAME = "perch-key.json"
HEADER = struct.Struct(">4sBBHH")


class BundleError(Exception):
    pass


# ---------------------------------------------------------------- keys


def keygen(out_dir: Path | str) -> dict[str, Path]:
    """Make an RSA-2048 key pair in out_dir; returns the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    priv = out / PRIVATE_NAME
    priv.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    priv.chmod(0o600)
    pub = out / PUBLIC_NAME
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    cfg = out / CONFIG_KEY_NAME
    cfg.write_text(json.dumps(config_key(pub)) + "\n")
    return {"private": priv, "public": pub, "config": cfg}


def load_private(path: Path | str) -> rsa.RSAPrivateKey:
    data = Path(path).read_bytes()
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size != 2048:
        raise ValueError(f"{path}: not an RSA-2048 private key")
    if key.public_key().public_numbers().e != 65537:
        raise ValueError(f"{path}: public exponent must be 65537")
    return key


def config_key(path: Path | str) -> dict[str, str]:
    """The compact form the device keeps in ota.keys: {"n": modulus hex}.

    Accepts a public or a private PEM; the exponent is always 65537.
    """
    data = Path(path).read_bytes()
    if b"PRIVATE" in data:
        pub = load_private(path).public_key()
    else:
        loaded = serialization.load_pem_public_key(data)
        if not isinstance(loaded, rsa.RSAPublicKey):
            raise ValueError(f"{path}: not an RSA public key")
        pub = loaded
    nums = pub.public_numbers()
    if nums.e != 65537 or pub.key_size != 2048:
        raise ValueError(f"{path}: need RSA-2048 with e=65537")
    return {"n": format(nums.n, "x")}


def sign_bytes(data: bytes, key: rsa.RSAPrivateKey) -> bytes:
    return key.sign(data, padding.PKCS1v15(), hashes.SHA256())


# ---------------------------------------------------------------- bundles


def _deflate(data: bytes) -> bytes:
    out = []
    for i in range(0, len(data), BLOCK):
        c = zlib.compressobj(9, zlib.DEFLATED, -WBITS, 9)
        z = c.compress(data[i : i + BLOCK]) + c.flush()
        assert len(z) <= ZMAX, "a 2048-byte block cannot deflate to more than ZMAX"
        out += [struct.pack(">H", len(z)), z]
    return b"".join(out)


def _inflate(blob: bytes) -> bytes:
    out = []
    pos = 0
    while pos < len(blob):
        (n,) = struct.unpack_from(">H", blob, pos)
        out.append(zlib.decompress(blob[pos + 2 : pos + 2 + n], -15))
        pos += 2 + n
    return b"".join(out)


def manifest_bytes(manifest: dict) -> bytes:
    """The manifest as the device reads it: JSON, with everything but the file list on the
    first line, which ends in "files":[, then one file entry per line, then ]}."""
    head = {k: v for k, v in manifest.items() if k != "files"}
    top = json.dumps(head, separators=(",", ":"))[:-1] + ',"files":[\n'
    rows = ",\n".join(json.dumps(e, separators=(",", ":")) for e in manifest.get("files", []))
    return (top + rows + "\n]}").encode()


def _collect(tree: Path) -> list[tuple[str, bytes]]:
    files = []
    for p in sorted(tree.rglob("*")):
        if p.is_file():
            rel = p.relative_to(tree).as_posix()
            if rel == "manifest.json" or "__pycache__" in rel:
                continue
            files.append((rel, p.read_bytes()))
    return files


def pack(
    files: list[tuple[str, bytes]],
    version: str,
    *,
    kind: str = "app",
    key: rsa.RSAPrivateKey | None = None,
    micropython: str = DEFAULT_MICROPYTHON,
    compress: bool = True,
    manifest_extra: dict | None = None,
    sign: Callable[[bytes], bytes] | None = None,
) -> bytes:
    """Serialise (path, content) pairs into a bundle, signed with `key` (or the `sign`
    callable). No path checks: tests use this to make hostile bundles the device must refuse."""
    entries = []
    blobs = []
    # the device requires paths in strictly ascending order (so it finds duplicates in one pass)
    for path, data in sorted(files, key=lambda f: f[0]):
        entry = {"path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        blob = data
        if compress:
            z = _deflate(data)
            if len(z) < len(data):
                entry["zsize"] = len(z)
                blob = z
        entries.append(entry)
        blobs.append(blob)
    manifest = {
        "format": FORMAT,
        "type": kind,
        "version": version,
        "micropython": micropython,
        "wbits": WBITS,
        "files": entries,
    }
    if manifest_extra:
        manifest.update(manifest_extra)
    mbytes = manifest_bytes(manifest)
    if key is not None:
        sig = sign_bytes(mbytes, key)
    else:
        sig = sign(mbytes) if sign else b""
    head = HEADER.pack(MAGIC, FORMAT, 0, len(mbytes), len(sig))
    return b"".join([head, mbytes, sig, *blobs])


def read_manifest(data: bytes) -> tuple[dict, bytes, bytes]:
    """Parse a bundle's header; returns (manifest, manifest bytes, signature)."""
    if len(data) < HEADER.size:
        raise BundleError("truncated header")
    magic, fmt, _flags, mlen, slen = HEADER.unpack_from(data)
    if magic != MAGIC or fmt != FORMAT:
        raise BundleError("not a Perch bundle of format %d" % FORMAT)
    mbytes = data[HEADER.size : HEADER.size + mlen]
    sig = data[HEADER.size + mlen : HEADER.size + mlen + slen]
    return json.loads(mbytes), mbytes, sig


def unpack(blob: bytes) -> tuple[dict, bytes, bytes, dict[str, bytes]]:
    """Return (manifest, manifest bytes, signature, {path: data}), checking sizes and hashes."""
    manifest, mbytes, sig = read_manifest(blob)
    pos = HEADER.size + len(mbytes) + len(sig)
    files = {}
    for e in manifest["files"]:
        n = e.get("zsize", e["size"])
        data = blob[pos : pos + n]
        pos += n
        if len(data) != n:
            raise BundleError("truncated at " + e["path"])
        if "zsize" in e:
            data = _inflate(data)
        if len(data) != e["size"] or hashlib.sha256(data).hexdigest() != e["sha256"]:
            raise BundleError("hash mismatch: " + e["path"])
        files[e["path"]] = data
    return manifest, mbytes, sig, files


def build_app(
    tree: Path | str,
    version: str,
    out_dir: Path | str,
    key_path: Path | str | None = None,
    micropython: str = DEFAULT_MICROPYTHON,
) -> Path:
    """Bundle a compiled tree (perch/*.mpy, microdot/*.mpy, umqtt/simple.mpy)."""
    tree = Path(tree)
    files = _collect(tree)
    if not files:
        raise ValueError(f"{tree}: no files to bundle")
    key = load_private(key_path) if key_path else None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"perch-{version}.bundle"
    path.write_bytes(pack(files, version, key=key, micropython=micropython))
    return path


def build_firmware(
    app_bin: Path | str,
    version: str,
    out_dir: Path | str,
    key_path: Path | str | None = None,
) -> Path:
    """Bundle a MicroPython .app-bin image as a "firmware" bundle."""
    data = Path(app_bin).read_bytes()
    key = load_private(key_path) if key_path else None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"perch-firmware-{version}.bundle"
    path.write_bytes(pack([("firmware.app-bin", data)], version, kind="firmware", key=key))
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bundle", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("app", help="bundle a compiled tree")
    a.add_argument("tree")
    a.add_argument("--version", required=True)
    a.add_argument("--key")
    a.add_argument("--out", default="dist")
    f = sub.add_parser("firmware", help="bundle a MicroPython .app-bin image")
    f.add_argument("app_bin")
    f.add_argument("--version", required=True)
    f.add_argument("--key")
    f.add_argument("--out", default="dist")
    s = sub.add_parser("show", help="print a bundle's manifest")
    s.add_argument("bundle")
    args = ap.parse_args(argv)
    if args.cmd == "app":
        print(build_app(args.tree, args.version, args.out, args.key))
    elif args.cmd == "firmware":
        print(build_firmware(args.app_bin, args.version, args.out, args.key))
    else:
        man, _, sig = read_manifest(Path(args.bundle).read_bytes())
        man["signed"] = bool(sig)
        print(json.dumps(man, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
