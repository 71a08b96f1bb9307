"""Shared by the OTA tests and bench: signed bundles of the working tree, broken variants, and
an update-server folder served on loopback."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

import build  # noqa: E402
import bundle  # noqa: E402
import update_server  # noqa: E402

CRASH_APP = "def main():\n    raise RuntimeError('boom in the new version')\n"
# blocks before the event loop (and its watchdog feeding) ever starts
HANG_APP = "import time\n\ndef main():\n    while True:\n        time.sleep(1)\n"


def compile_src(src: str, name: str, tmp: Path) -> bytes:
    py = tmp / "src.py"
    py.write_text(src)
    out = tmp / "src.mpy"
    subprocess.run([build.mpy_cross(), "-s", name, "-o", str(out), str(py)], check=True)
    return out.read_bytes()


class Release:
    """Signed bundles of the working tree, plus an update server folder with some of them."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.keys = bundle.keygen(tmp / "keys")
        self.key = bundle.load_private(self.keys["private"])
        self.cfg_key = bundle.config_key(self.keys["public"])
        self.dist = tmp / "dist"
        self.dist.mkdir()
        self.files: dict[str, list[tuple[str, bytes]]] = {}

    def tree(self, version: str) -> list[tuple[str, bytes]]:
        if version not in self.files:
            self.files[version] = build.compile_tree(version)
        return self.files[version]

    def make(self, version: str, app_src: str | None = None, name: str | None = None,
             filler: int = 0) -> Path:
        files = list(self.tree(version))
        if filler:
            # incompressible padding: stretches download and flash writes for fault injection
            files.append(("perch/filler.bin", os.urandom(filler)))
        if app_src is not None:
            mpy = compile_src(app_src, "perch/app.py", self.tmp)
            files = [(p, mpy if p == "perch/app.mpy" else d) for p, d in files]
        path = self.dist / (name or f"perch-{version}.bundle")
        path.write_bytes(bundle.pack(files, version, key=self.key))
        return path

    def serve(self, versions: list[str], filler: int = 0, rate: int = 0):
        self.www = self.tmp / "www"
        for v in versions:
            update_server.release(self.www, self.make(v, filler=filler), self.keys["private"],
                                  notes=f"release {v}")
        self.server, self.url = update_server.serve_in_thread(self.www, rate=rate)
        return self.url

    def config(self, **ota) -> dict:
        doc = {"keys": [self.cfg_key], "server": getattr(self, "url", None)}
        doc.update(ota)
        return {"ota": {k: v for k, v in doc.items() if v is not None}}


def wait_for(fn, timeout=40.0, what="condition", board=None):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:  # board rebooting: connection refused, reset, timeouts
            last = e
        time.sleep(0.2)
    tail = board.log()[-3000:] if board is not None else ""
    raise AssertionError(f"timed out waiting for {what}; last={last!r}\n{tail}")


def status_if(board, pred):
    s = board.get("/api/status", timeout=3).json()
    return s if pred(s) else None


def wait_version(board, version, confirmed=True, timeout=40.0):
    def ok(s):
        return s["version"] == version and (not confirmed or s["ota"]["confirmed"])

    return wait_for(lambda: status_if(board, ok), timeout, f"version {version}", board)


def check_active_slot(root: Path) -> str:
    """The active slot is complete and every file matches its manifest; returns its version."""
    st = json.loads((root / "app" / "state.json").read_text())
    slot = root / "app" / st["active"]
    man = json.loads((slot / "manifest.json").read_text())
    for e in man["files"]:
        data = (slot / e["path"]).read_bytes()
        assert len(data) == e["size"], e["path"]
        assert hashlib.sha256(data).hexdigest() == e["sha256"], e["path"]
    return man["version"]
