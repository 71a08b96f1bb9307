"""Type-check the device code against the MicroPython ESP32 stubs.

mypy does not find the stubs' top-level .pyi files in site-packages, so they are copied into
.stubs/ and put on MYPYPATH, with MicroPython's own typeshed (micropython-stdlib-stubs) in
place of CPython's. Errors inside the stubs or the fetched dependencies are not ours and are
dropped; any other error, such as a call the ESP32 port lacks, fails the check.
"""

import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STUBS = REPO / ".stubs"
TARGETS = ["lib/perch", "boot.py", "main.py"]


def copy_stubs():
    dist = metadata.distribution("micropython-esp32-esp32-generic-stubs")
    if STUBS.exists():
        shutil.rmtree(STUBS)
    for f in dist.files:
        if f.suffix == ".pyi":
            dst = STUBS / f.as_posix()
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(f.locate(), dst)
    typeshed = Path(metadata.distribution("micropython-stdlib-stubs").locate_file(""))
    return typeshed


def main():
    typeshed = copy_stubs()
    import build  # the generated module a factory image freezes (pages.py reads it)

    frozen = build.frozen_assets().parent
    env = dict(os.environ, MYPYPATH=os.pathsep.join([str(STUBS), str(REPO / ".deps"),
                                                     str(frozen)]))
    cmd = [sys.executable, "-m", "mypy", "--check-untyped-defs", "--no-incremental",
           "--custom-typeshed-dir", str(typeshed), "--python-version", "3.11",
           "--follow-imports", "silent", "--no-error-summary", "--show-error-codes",
           "--disable-error-code", "import-untyped", *TARGETS]
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    ours = [line for line in r.stdout.splitlines()
            if line.startswith(("lib/", "boot.py", "main.py")) and ": error:" in line]
    for line in ours:
        print(line)
    if r.returncode not in (0, 1) or (r.returncode and not ours and "error" in r.stderr):
        print(r.stdout, r.stderr, file=sys.stderr)
        return 2
    print("typecheck: %d error(s) in %s" % (len(ours), ", ".join(TARGETS)))
    return 1 if ours else 0


if __name__ == "__main__":
    sys.exit(main())
