"""Run a MicroPython snippet with the device package and fetched deps on MICROPYPATH.

Used by the MQTT/telemetry unit tests until (and alongside) the shared `mpy` fixture.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROPYTHON = os.path.join(os.path.dirname(sys.executable), "micropython")


def mpypath() -> str:
    return ":".join([os.path.join(ROOT, "lib"), os.path.join(ROOT, ".deps"), ".frozen"])


def run(code: str, timeout: float = 60, cwd: str | None = None, heap: str = "2m",
        env: dict | None = None) -> subprocess.CompletedProcess:
    e = dict(os.environ, MICROPYPATH=mpypath())
    if env:
        e.update(env)
    return subprocess.run([MICROPYTHON, "-X", f"heapsize={heap}", "-c", code],
                          capture_output=True, text=True, timeout=timeout, cwd=cwd, env=e)


def run_json(code: str, **kw):
    """Run `code`, which prints one JSON document as its last stdout line; return it."""
    r = run(code, **kw)
    assert r.returncode == 0, f"micropython failed:\n{r.stdout}\n{r.stderr}"
    return json.loads(r.stdout.strip().splitlines()[-1])
