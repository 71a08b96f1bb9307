"""Heap cost of each module as the virtual board loads it: a tool for cutting RAM.

    .venv/bin/python bench/heapmap.py [module,module,...] [--heap 1m]

Builds the app bundle, lays out a board root, then runs MicroPython with the board's host
modules (compiled, as the sim runs them) and prints gc.mem_alloc() growth per import, in the
order given (a module's cost includes whatever it imports that is not loaded yet), the total,
and the qstr pool (interned names: never freed, even when a module is dropped).
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tools"), str(REPO / "tools" / "sim")]

import runner  # noqa: E402

import build  # noqa: E402

# Boot order: the loader's and hw's host modules first, then what app.run() loads.
BOOT = ("machine", "network", "esp32", "asyncio", "perch.log", "perch.config", "perch.hw",
        "perch.app", "microdot", "perch.httpguard", "perch.web", "perch.auth", "perch.wifi",
        "perch.portal", "perch.outbox", "perch.sensors", "perch.telemetry",
        "perch.slots", "perch.ota", "perch.pages")

CODE = """
import gc, sys, micropython
sys.path.insert(0, 'app/a')
gc.collect()
base = gc.mem_alloc()
for m in %r:
    gc.collect()
    a = gc.mem_alloc()
    try:
        __import__(m)
    except Exception as e:
        print('%%-22s failed: %%r' %% (m, e))
        continue
    gc.collect()
    print('%%-22s %%7d' %% (m, gc.mem_alloc() - a))
gc.collect()
print('%%-22s %%7d' %% ('total', gc.mem_alloc() - base))
micropython.qstr_info()
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("modules", nargs="?", help="comma-separated, default: boot order")
    ap.add_argument("--heap", default="1m")
    a = ap.parse_args(argv)
    mods = a.modules.split(",") if a.modules else list(BOOT)
    with tempfile.TemporaryDirectory(prefix="perch-heapmap-") as tmp:
        root = Path(tmp) / "root"
        build.install_root(root, build.build(out_dir=Path(tmp) / "dist"))
        env = dict(os.environ, MICROPYPATH="%s:.frozen" % runner.rom_dir())
        env.pop("PERCH_SIM_WORLD", None)
        r = subprocess.run([runner.find_micropython(), "-X", "heapsize=" + a.heap, "-c",
                            CODE % (mods,)], cwd=root, env=env, capture_output=True, text=True)
        sys.stdout.write(r.stdout)
        sys.stderr.write(r.stderr)
        return r.returncode


if __name__ == "__main__":
    sys.exit(main())
