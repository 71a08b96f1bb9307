"""Compile lib/perch and the pinned dependencies with mpy-cross, then pack an app bundle."""

import gzip
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import bundle
import deps

REPO = Path(__file__).resolve().parent.parent
LIB = REPO / "lib"
BUILD = REPO / "build"
DIST = REPO / "dist"


def package_version():
    text = (LIB / "perch" / "version.py").read_text()
    return text.split('VERSION = "', 1)[1].split('"', 1)[0]


def mpy_cross():
    exe = Path(sys.executable).parent / "mpy-cross"
    return str(exe) if exe.exists() else "mpy-cross"


def sources(version):
    """[(relative .py path, source bytes)] for our package and the dependencies."""
    deps.fetch()
    out = []
    for root in (LIB, deps.DEPS):
        for py in sorted(root.rglob("*.py")):
            rel = py.relative_to(root).as_posix()
            data = py.read_bytes()
            if rel == "perch/version.py":
                data = b'VERSION = "%s"\n' % version.encode()
            out.append((rel, data))
    return out


def assets():
    """[(path, bytes)]: page files the slot carries next to the .mpy files, read from flash in
    small pieces at request time, so neither markup nor stylesheet sits in RAM."""
    css = gzip.compress((LIB / "perch" / "style.css").read_bytes(), 9, mtime=0)
    return [("perch/pages.bin", compile_pages()), ("perch/style.css.gz", css)]


_BLOCK = re.compile(r"<!--#(\w+)([^>]*?)-->")
_SLOT = re.compile(r"\{\{(\w+)\}\}")


def compile_pages(src=LIB / "perch" / "pages.html", code=LIB / "perch"):
    """pages.html -> pages.bin, read by pages.stream(): the u16 LE offset of each block, then
    the blocks. A block is its text cut at the slots: u16 LE length of the first piece, the
    piece, then after each piece the slot's number (255: end of block) and the next length.
    Checks that the _B_NAME = const(n) of every module in `code` name block n."""
    text = re.sub(r"<!--(?!#).*?-->", "", src.read_text(), flags=re.S)
    parts = _BLOCK.split(text)[1:]
    names, blocks = [], []
    for i in range(0, len(parts), 3):
        name, slots, body = parts[i], parts[i + 1].split(), parts[i + 2]
        out = ""
        for line in body.strip().splitlines():
            line = line.strip()
            if line:
                glue = "" if not out or out.endswith(">") or line.startswith("<") else " "
                out += glue + line
        used = set(_SLOT.findall(out))
        if used != set(slots) or len(slots) > 255:
            raise bundle.BundleError("pages.html block %s: slots %s, used %s"
                                     % (name, slots, sorted(used)))
        cut = _SLOT.split(out)  # piece, slot, piece, slot, ..., piece
        data = len(cut[0].encode()).to_bytes(2, "little") + cut[0].encode()
        for k in range(1, len(cut), 2):
            piece = cut[k + 1].encode()
            data += bytes([slots.index(cut[k])]) + len(piece).to_bytes(2, "little") + piece
        names.append(name)
        blocks.append(data + b"\xff\0\0")
    for py in sorted(code.glob("*.py")):
        for name, n in re.findall(r"^_B_(\w+) = const\((\d+)\)", py.read_text(), re.M):
            if name.lower() not in names or names.index(name.lower()) != int(n):
                raise bundle.BundleError("%s: _B_%s = const(%s) is not block %s of pages.html"
                                         % (py.name, name, n, name.lower()))
    offs = [2 * len(blocks)]
    for b in blocks[:-1]:
        offs.append(offs[-1] + len(b))
    if offs[-1] + len(blocks[-1]) > 0xFFFF:
        raise bundle.BundleError("pages.bin is over 64 KB")
    return b"".join(o.to_bytes(2, "little") for o in offs) + b"".join(blocks)


def compile_tree(version):
    """Compile every source with mpy-cross; return [(path, bytes)] of the .mpy files and the
    page assets, in a stable order."""
    files = []
    # A private work folder: test workers and the bench build at the same time.
    with tempfile.TemporaryDirectory(dir=BUILD) as tmp:
        tmp = Path(tmp)
        for rel, data in sources(version):
            src = tmp / "src" / rel
            src.parent.mkdir(parents=True, exist_ok=True)
            src.write_bytes(data)
            mpy = (tmp / "out" / rel).with_suffix(".mpy")
            mpy.parent.mkdir(parents=True, exist_ok=True)
            # -s names the module by its path in tracebacks, not by the temp folder.
            r = subprocess.run([mpy_cross(), "-s", rel, "-o", str(mpy), str(src)],
                               capture_output=True, text=True)
            if r.returncode:
                raise bundle.BundleError("mpy-cross failed on %s:\n%s" % (rel, r.stderr.strip()))
            files.append((mpy.relative_to(tmp / "out").as_posix(), mpy.read_bytes()))
    return assets() + files


def frozen_assets():
    """Write build/frozen/perch_assets.py: the page files as bytes constants, for
    firmware/manifest.py. Frozen, they stay in flash and pages read them in place when the
    filesystem has no slot (a board running only the factory image)."""
    out = BUILD / "frozen" / "perch_assets.py"
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# Generated by tools/build.py from lib/perch/pages.html and style.css\n"]
    for path, data in assets():
        lines.append("%s = %r\n" % (Path(path).name.split(".")[0].upper(), data))
    out.write_text("".join(lines))
    return out


def build(version=None, sign=None, out_dir=None):
    """Build the app bundle; return its path."""
    version = version or package_version()
    BUILD.mkdir(exist_ok=True)
    frozen_assets()
    files = compile_tree(version)
    blob = bundle.pack(files, version, sign=sign)
    out = Path(out_dir) if out_dir else DIST
    out.mkdir(parents=True, exist_ok=True)
    path = out / ("perch-%s.bundle" % version)
    path.write_bytes(blob)
    return path


def install_root(root, bundle_path, seed_config=None):
    """Lay out a board filesystem (what deploy puts on a board) from a bundle, in root."""
    root = Path(root)
    manifest, mbytes, _, files = bundle.unpack(Path(bundle_path).read_bytes())
    slot = root / "app" / "a"
    if slot.exists():
        shutil.rmtree(slot)
    for path, data in files.items():
        p = slot / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    (slot / "manifest.json").write_bytes(mbytes)
    state = {"active": "a", "previous": None, "trial": False, "tries": 0, "crashes": 0,
             "reason": None}
    (root / "app" / "state.json").write_text(json.dumps(state))
    for name in ("boot.py", "main.py"):
        shutil.copy(REPO / name, root / name)
    if seed_config is not None and not (root / "config.json").exists():
        (root / "config.json").write_text(json.dumps(seed_config))
    return manifest
