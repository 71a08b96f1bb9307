"""Helpers for the virtual-board tests: run MicroPython with the board modules, talk to it."""

from __future__ import annotations

import ast
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BOARD = REPO / "tools" / "sim" / "board"
RUNNER = REPO / "tools" / "sim" / "runner.py"

sys.path.insert(0, str(REPO / "tools" / "sim"))
import runner  # noqa: E402

MICROPYTHON = runner.find_micropython()
WAIT_S = 20.0  # generous: a loaded CI box must not turn a slow start into a failure


def write_world(path: Path, world: dict) -> None:
    # atomic, so the board never reads half a file
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(world))
    os.replace(tmp, path)


def board_env(world: Path | None = None, board_dir: Path = BOARD, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERCH_")}
    env["MICROPYPATH"] = f"{board_dir}:.frozen"
    if world is not None:
        env["PERCH_SIM_WORLD"] = str(world)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_mp(code: str, cwd: Path, env: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MICROPYTHON, "-c", code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class _Lines:
    """Collects the lines of one or more pipes in a background thread each."""

    def __init__(self):
        self.q: queue.Queue = queue.Queue()
        self.seen: list[str] = []
        self.claimed: set[int] = set()

    def pump(self, stream, tag: str) -> None:
        def loop():
            for line in stream:
                self.q.put(f"{tag}{line.rstrip()}")
            stream.close()

        threading.Thread(target=loop, daemon=True).start()

    def expect(self, pattern: str, timeout: float = WAIT_S) -> re.Match:
        """First unclaimed line (seen or yet to come) matching `pattern`; claims it.

        Lines from separate pipes may interleave either way, so an earlier line that did not
        match stays available to a later expect."""
        rx = re.compile(pattern)
        for k, line in enumerate(self.seen):
            if k not in self.claimed and (m := rx.search(line)):
                self.claimed.add(k)
                return m
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line matching {pattern!r}; saw:\n" + self.text())
            try:
                line = self.q.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(line)
            m = rx.search(line)
            if m:
                self.claimed.add(len(self.seen) - 1)
                return m

    def drain(self, wait: float) -> list[str]:
        """Lines arriving within `wait` seconds (for checking that nothing happens)."""
        end = time.monotonic() + wait
        got = []
        while (left := end - time.monotonic()) > 0:
            try:
                line = self.q.get(timeout=left)
            except queue.Empty:
                break
            self.seen.append(line)
            got.append(line)
        return got

    def text(self) -> str:
        return "\n".join(self.seen)


SHELL = """
import sys
g = {}
while True:
    line = sys.stdin.readline()
    if not line:
        break
    cmd, src = line[0], line[2:].rstrip("\\n")
    try:
        if cmd == "E":
            r = repr(eval(src, g))
        else:
            exec(src, g)
            r = "None"
        print(">>", r)
    except Exception as e:
        print("!!", type(e).__name__, e)
"""


class MPError(Exception):
    """An exception raised on the MicroPython side: `.kind` is its type name."""

    def __init__(self, kind: str, msg: str):
        super().__init__(f"{kind}: {msg}")
        self.kind = kind
        self.msg = msg


class Shell:
    """A MicroPython process driven statement by statement over stdin/stdout."""

    def __init__(self, cwd: Path, env: dict):
        self.p = subprocess.Popen(
            [MICROPYTHON, "-c", SHELL],
            cwd=cwd,
            env=env,
            text=True,
            bufsize=1,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.out = _Lines()
        self.out.pump(self.p.stdout, "")

    def _call(self, cmd: str, src: str):
        assert self.p.stdin is not None
        assert "\n" not in src
        self.p.stdin.write(f"{cmd} {src}\n")
        self.p.stdin.flush()
        m = self.out.expect(r"^(>>|!!) (.*)$")
        if m.group(1) == "!!":
            kind, _, msg = m.group(2).partition(" ")
            raise MPError(kind, msg)
        return ast.literal_eval(m.group(2))

    def ex(self, stmt: str) -> None:
        """Execute a statement (use ';' for several, so they run back to back)."""
        self._call("X", stmt)

    def block(self, code: str) -> None:
        """Execute a multi-line block in the shell's globals."""
        self._call("X", f"exec({code!r})")

    def ev(self, expr: str):
        """Evaluate an expression and return its value (literals only)."""
        return self._call("E", expr)

    def until(self, expr: str, want, timeout: float = WAIT_S):
        """Re-evaluate `expr` until it equals `want` (or satisfies it, if callable)."""
        end = time.monotonic() + timeout
        ok = want if callable(want) else (lambda v: v == want)
        while True:
            v = self.ev(expr)
            if ok(v):
                return v
            if time.monotonic() > end:
                raise AssertionError(f"{expr} stayed {v!r}, wanted {want!r}")
            time.sleep(0.02)

    def close(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()


class Sim:
    """A supervisor (tools/sim/runner.py) on a root; board stdout is tagged 'B ', its own 'S '."""

    def __init__(self, root: Path, *args: str, env: dict | None = None):
        e = {k: v for k, v in os.environ.items()}
        e.update(env or {})
        self.p = subprocess.Popen(
            [sys.executable, str(RUNNER), "--root", str(root), *args],
            env=e,
            text=True,
            bufsize=1,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.out = _Lines()
        self.out.pump(self.p.stdout, "B ")
        self.out.pump(self.p.stderr, "S ")

    def expect(self, pattern: str, timeout: float = WAIT_S) -> re.Match:
        return self.out.expect(pattern, timeout)

    def board_pid(self, timeout: float = WAIT_S) -> int:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            pid = runner.board_pid(self.p.pid)
            if pid:
                return pid
            time.sleep(0.02)
        raise AssertionError("supervisor has no board process")

    def stop(self, timeout: float = WAIT_S) -> int:
        if self.p.poll() is None:
            self.p.terminate()
        try:
            return self.p.wait(timeout)
        finally:
            if self.p.poll() is None:
                self.p.kill()
                self.p.wait()
