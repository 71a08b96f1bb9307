"""The device bundle reader (lib/perch/bundle.py + slots.py) run under the MicroPython Unix port.

Bundles are made with the host builder (tools/bundle.py); each one is installed by a real
`micropython` process into a board root holding version 1.0.0 in slot a.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

import bundle as hostbundle  # noqa: E402

MPY = str(Path(sys.executable).with_name("micropython"))
SCRIPT = REPO / "tests" / "device" / "install_bundle.py"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    good = hostbundle.keygen(d / "good")
    other = hostbundle.keygen(d / "other")
    return {
        "priv": hostbundle.load_private(good["private"]),
        "other": hostbundle.load_private(other["private"]),
        "cfg": hostbundle.config_key(good["public"]),
    }


def tree_files(version: str, extra: int = 0) -> list[tuple[str, bytes]]:
    rnd = random.Random(version)
    files = [
        ("perch/version.py", f'VERSION = "{version}"\n'.encode()),
        ("perch/app.py", b"def main():\n    print('hello')\n" * 50),
        ("microdot/microdot.py", bytes(rnd.getrandbits(8) for _ in range(5000))),
    ]
    if extra:
        files.append(("perch/big.bin", bytes(rnd.getrandbits(8) for _ in range(extra))))
    return files


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    a = r / "app" / "a"
    (a / "perch").mkdir(parents=True)
    (a / "perch" / "version.py").write_text('VERSION = "1.0.0"\n')
    (a / "manifest.json").write_text(json.dumps({"format": 1, "type": "app",
                                                 "version": "1.0.0", "files": []}))
    (r / "app" / "state.json").write_text(json.dumps(
        {"active": "a", "previous": None, "trial": False, "tries": 0, "crashes": 0,
         "reason": None}))
    return r


def install(root: Path, data: bytes, cfg: dict) -> dict:
    path = root.parent / "x.bundle"
    path.write_bytes(data)
    # config goes through a file: this micropython build aborts on long argv strings
    cfg_path = root.parent / "cfg.json"
    cfg_path.write_text(json.dumps(cfg))
    env = dict(os.environ, MICROPYPATH=f"{REPO / 'lib'}:.frozen")
    p = subprocess.run([MPY, str(SCRIPT), str(path), str(cfg_path)], cwd=root, env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr + p.stdout
    return json.loads(p.stdout.strip().splitlines()[-1])


def assert_untouched(root: Path, res: dict) -> None:
    assert res["ok"] is False
    assert res["state"]["active"] == "a"
    assert res["active_version"] == "1.0.0"
    assert (root / "app" / "a" / "perch" / "version.py").read_text() == 'VERSION = "1.0.0"\n'
    assert not (root / "app" / ".new").exists()
    assert not (root / "app" / ".z").exists()
    assert not (root / "app" / ".mz").exists()
    assert not (root / "app" / ".m").exists()
    assert not (root / "app" / "b").exists()


def test_good_bundle_installs_into_inactive_slot(root, keys):
    files = tree_files("1.1.0", extra=300_000)
    data = hostbundle.pack(files, "1.1.0", key=keys["priv"])
    res = install(root, data, {"keys": [keys["cfg"]]})
    assert res["ok"], res
    assert res["state"]["active"] == "b" and res["state"]["previous"] == "a"
    assert res["state"]["trial"] is True
    assert res["active_version"] == "1.1.0"
    assert res["done"] == len(data)
    for path, content in files:
        assert (root / "app" / "b" / path).read_bytes() == content
    # the running slot was not written
    assert (root / "app" / "a" / "perch" / "version.py").read_text() == 'VERSION = "1.0.0"\n'


def test_compressed_blocks_parked_on_flash_without_a_2k_run(root, keys):
    # the slow path, taken only when the heap has no run for the compressed block
    files = tree_files("1.1.0", extra=20_000)
    data = hostbundle.pack(files, "1.1.0", key=keys["priv"])
    bad = install(root, _tamper(data, len(data) - 100), {"keys": [keys["cfg"]], "park": True})
    assert_untouched(root, bad)
    res = install(root, data, {"keys": [keys["cfg"]], "park": True})
    assert res["ok"], res
    assert res["active_version"] == "1.1.0"
    for path, content in files:
        assert (root / "app" / "b" / path).read_bytes() == content
    assert not (root / "app" / ".mz").exists()


def test_uncompressed_and_semver_floor(root, keys):
    # 1.10.0 >= 1.9.0 numerically, though "1.10.0" < "1.9.0" as strings
    data = hostbundle.pack(tree_files("1.10.0"), "1.10.0", key=keys["priv"], compress=False)
    res = install(root, data, {"keys": [keys["cfg"]], "min_version": "1.9.0"})
    assert res["ok"], res
    assert res["active_version"] == "1.10.0"


def test_unsigned_needs_allow_unsigned(root, keys):
    data = hostbundle.pack(tree_files("1.1.0"), "1.1.0")
    res = install(root, data, {"keys": [keys["cfg"]]})
    assert_untouched(root, res)
    assert "unsigned bundle refused" in res["error"]
    res = install(root, data, {"keys": [], "allow_unsigned": True})
    assert res["ok"], res


def _tamper(data: bytes, where: int) -> bytes:
    b = bytearray(data)
    b[where] ^= 0x01
    return bytes(b)


def _mk(keys, files=None, version="1.1.0", **kw):
    return hostbundle.pack(files or tree_files(version), version, key=keys["priv"], **kw)


BAD = {
    "tampered_file_byte": (lambda k: _tamper(_mk(k, compress=False), -100), "sha256 mismatch"),
    "tampered_compressed_byte": (lambda k: _tamper(_mk(k), -100), "in microdot/microdot.py"),
    "tampered_manifest": (lambda k: _tamper(_mk(k), 40), "bad signature"),
    "bad_signature": (
        lambda k: _resign(_mk(k), bytes(random.Random(1).getrandbits(8) for _ in range(256))),
        "bad signature",
    ),
    "wrong_key": (
        lambda k: hostbundle.pack(tree_files("1.1.0"), "1.1.0", key=k["other"]),
        "bad signature",
    ),
    "truncated": (lambda k: _mk(k)[:-500], "truncated bundle"),
    "truncated_in_header": (lambda k: _mk(k)[:100], "truncated bundle"),
    "below_min_version": (lambda k: _mk(k, version="0.9.0"), "below ota.min_version 1.0.0"),
    "path_traversal": (
        lambda k: _mk(k, files=[("perch/../../evil.py", b"x")]), "path leaves the slot"),
    "absolute_path": (lambda k: _mk(k, files=[("/main.py", b"x")]), "absolute path refused"),
    "boot_py": (lambda k: _mk(k, files=[("boot.py", b"x")]), "may not replace boot.py"),
    "oversize": (
        lambda k: _mk(k, manifest_extra={"files": [
            {"path": "perch/huge.bin", "size": 1 << 40, "sha256": "0" * 64}]}),
        "bundle too large",
    ),
    "garbage": (lambda k: bytes(random.Random(2).getrandbits(8) for _ in range(4000)),
                "not a Perch bundle"),
    "empty": (lambda k: b"", "truncated bundle"),
    "trailing_data": (lambda k: _mk(k) + b"junk", "trailing data"),
    "firmware_type_as_app": (
        lambda k: _mk(k, files=[("firmware.app-bin", b"x" * 100)], kind="firmware"),
        "wrong bundle type: firmware"),
    "newer_micropython": (lambda k: _mk(k, micropython="9.0.0"), "needs MicroPython 9.0.0"),
    # the reader finds duplicates in one pass: paths must come in ascending order
    "duplicate_path": (
        lambda k: _mk(k, manifest_extra={"files": [
            {"path": "perch/a.py", "size": 1, "sha256": "0" * 64},
            {"path": "perch/a.py", "size": 1, "sha256": "0" * 64}]}),
        "duplicate or unsorted path perch/a.py"),
    "unsorted_paths": (
        lambda k: _mk(k, manifest_extra={"files": [
            {"path": "perch/b.py", "size": 1, "sha256": "0" * 64},
            {"path": "perch/a.py", "size": 1, "sha256": "0" * 64}]}),
        "duplicate or unsorted path perch/a.py"),
    # a manifest that is not laid out one entry per line is refused, signed or not
    "one_line_manifest": (lambda k: _relayout(_mk(k), k, lambda m: m.replace(b"\n", b"")),
                          "manifest layout"),
    "trailing_comma": (lambda k: _relayout(_mk(k), k, lambda m: m.replace(b"\n]}", b",\n]}")),
                       "manifest is not valid JSON"),
    "old_format": (lambda k: _reformat(_mk(k), 1), "unsupported bundle format 1"),
    "bad_version": (lambda k: _mk(k, version="one.two"), "bad version"),
}


def _relayout(data: bytes, keys, edit) -> bytes:
    # the same bundle with its manifest bytes edited, signed again
    man, mbytes, old = hostbundle.read_manifest(data)
    new = edit(mbytes)
    head = hostbundle.HEADER.pack(b"PRCH", 2, 0, len(new), 256)
    return head + new + hostbundle.sign_bytes(new, keys["priv"]) + data[10 + len(mbytes) + 256:]


def _reformat(data: bytes, fmt: int) -> bytes:
    return data[:4] + bytes([fmt]) + data[5:]


def test_compressed_blocks_and_manifest_layout(root, keys):
    # a compressible file of several 2 KB blocks and an empty file; the slot keeps the manifest
    files = [("perch/big.txt", b"perch " * 3000), ("perch/empty.py", b"")]
    data = hostbundle.pack(files, "1.1.0", key=keys["priv"])
    man, mbytes, _ = hostbundle.read_manifest(data)
    assert man["format"] == 2 and mbytes.count(b"\n") == 3
    assert "zsize" in man["files"][0] and "zsize" not in man["files"][1]
    res = install(root, data, {"keys": [keys["cfg"]]})
    assert res["ok"], res
    assert (root / "app" / "b" / "perch" / "big.txt").read_bytes() == files[0][1]
    assert (root / "app" / "b" / "perch" / "empty.py").read_bytes() == b""
    assert (root / "app" / "b" / "manifest.json").read_bytes() == mbytes
    assert not (root / "app" / ".m").exists()


def _resign(data: bytes, sig: bytes) -> bytes:
    man, mbytes, old = hostbundle.read_manifest(data)
    assert len(old) == 256
    return data[: 10 + len(mbytes)] + sig + data[10 + len(mbytes) + 256:]


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_bundle_refused(root, keys, case):
    make, msg = BAD[case]
    res = install(root, make(keys), {"keys": [keys["cfg"]], "min_version": "1.0.0"})
    assert_untouched(root, res)
    assert msg in res["error"], res["error"]


def test_no_keys_configured(root, keys):
    res = install(root, _mk(keys), {"keys": []})
    assert_untouched(root, res)
    assert "ota.keys is empty" in res["error"]


def test_second_install_replaces_previous_slot_only(root, keys):
    assert install(root, _mk(keys, version="1.1.0"), {"keys": [keys["cfg"]]})["ok"]
    # confirm b, then install 1.2.0: it must go to slot a (the inactive one), not b
    st = json.loads((root / "app" / "state.json").read_text())
    st["trial"] = False
    (root / "app" / "state.json").write_text(json.dumps(st))
    res = install(root, _mk(keys, version="1.2.0"), {"keys": [keys["cfg"]]})
    assert res["ok"], res
    assert res["state"]["active"] == "a" and res["state"]["previous"] == "b"
    assert json.loads((root / "app" / "b" / "manifest.json").read_text())["version"] == "1.1.0"
