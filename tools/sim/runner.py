"""Virtual-board supervisor: runs the device code under the MicroPython Unix port.

It plays the part of the chip's power and reset circuitry: `machine.reset()` (exit code 75)
and a power cut (SIGKILL of the board process) restart the board on the same root, a watchdog
that is not fed kills and restarts it, any other exit leaves it "at the REPL" until SIGTERM.

Control datagrams from the board to 127.0.0.1:$PERCH_SIM_CTL (machine.py sends them):
`wdt <ms>` arms the watchdog, `feed` re-arms it, `reset` announces machine.reset() so that a
reset swallowed by device code (a bare except catching SystemExit) is still carried out.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BOARD_DIR = Path(__file__).resolve().parent / "board"
EXIT_RESET = 75  # machine.reset(): EX_TEMPFAIL, unlikely to come from anything else
STOP_GRACE_S = 5.0
RESET_GRACE_S = 2.0
POLL_S = 0.05
PR_SET_PDEATHSIG = 1

# machine.reset_cause() values of the ESP32 port
PWRON_RESET = "PWRON_RESET"
SOFT_RESET = "SOFT_RESET"
WDT_RESET = "WDT_RESET"


def _say(msg: str) -> None:
    # stdout belongs to the board's log stream; supervisor notes go to stderr
    print(f"[sim] {msg}", file=sys.stderr, flush=True)


def _die_with_parent() -> None:
    # A supervisor killed outright takes the board with it, like pulling the board's power;
    # otherwise an orphaned board would keep its ports.
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: the process group still lets a caller stop both


def find_micropython() -> str:
    """The `micropython` of the running venv, else the one on PATH."""
    here = Path(sys.executable).parent / "micropython"
    if here.exists():
        return str(here)
    found = shutil.which("micropython")
    if not found:
        raise FileNotFoundError(f"micropython not found next to {sys.executable} nor on PATH")
    return found


def default_mac(root: str | os.PathLike) -> str:
    """Stable per-root MAC: Espressif OUI plus three bytes hashed from the root path."""
    digest = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()
    return "240ac4" + digest[:6]


def _check_mac(mac: str) -> str:
    mac = mac.replace(":", "").replace("-", "").lower()
    if len(mac) != 12 or any(c not in "0123456789abcdef" for c in mac):
        raise ValueError(f"--mac must be 12 hex digits, got {mac!r}")
    return mac


def _check_heap(heap) -> str:
    heap = str(heap)
    if not re.fullmatch(r"[1-9][0-9]*[kKmM]?", heap):
        raise ValueError(f"--heap must be a size like 160k or 2M, got {heap!r}")
    return heap


def board_pid(supervisor_pid: int) -> int | None:
    """Pid of the MicroPython process a supervisor is running (Linux /proc), for power cuts."""
    try:
        for task in os.listdir(f"/proc/{supervisor_pid}/task"):
            with open(f"/proc/{supervisor_pid}/task/{task}/children") as f:
                kids = f.read().split()
            if kids:
                return int(kids[0])
    except OSError:
        pass
    return None


def rom_dir() -> Path:
    """The board modules compiled with mpy-cross, cached by content.

    On the chip, network, machine and esp32 are C code that costs no heap. Loaded from .py,
    their compiler run and bytecode would cost the board about 40 KB of heap; as .mpy, only
    their bytecode, which keeps the heap figures of the board close to the chip's.
    """
    sources = sorted(BOARD_DIR.glob("*.py"))
    # tracebacks name the module: a "<name>.py" source name would cost one more interned string
    digest = hashlib.sha256(b"mpy-cross -O3 -s <module>\0")
    for src in sources:
        digest.update(src.name.encode() + b"\0" + src.read_bytes())
    out = BOARD_DIR.parents[2] / "build" / "sim-rom" / digest.hexdigest()[:16]
    if out.is_dir():
        return out
    exe = Path(sys.executable).parent / "mpy-cross"
    tmp = out.with_name(f"{out.name}.tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    for src in sources:
        subprocess.run([str(exe) if exe.exists() else "mpy-cross", "-O3", "-s", src.stem,
                        "-o", str(tmp / (src.stem + ".mpy")), str(src)], check=True)
    try:
        tmp.rename(out)
    except OSError:  # another board compiled the same sources first
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def board_env(root: Path, http_port: int, dns_port: int, world, env, mac, ctl_port: int) -> dict:
    out = dict(os.environ)
    if env:
        out.update({k: str(v) for k, v in env.items()})
    out["MICROPYPATH"] = f"{rom_dir()}:.frozen"
    out["PERCH_HTTP_PORT"] = str(http_port)
    out["PERCH_DNS_PORT"] = str(dns_port)
    out["PERCH_SIM_CTL"] = str(ctl_port)
    out["PERCH_SIM_MAC"] = _check_mac(mac) if mac else default_mac(root)
    out.pop("PERCH_SIM_BOOTED", None)  # esp32's mark of a boot under way: each boot sets it
    if world:
        out["PERCH_SIM_WORLD"] = str(Path(world).resolve())
    else:
        out.pop("PERCH_SIM_WORLD", None)
    return out


class _Supervisor:
    def __init__(self, root: Path, heap: str, env: dict, ctl: socket.socket):
        self.root = root
        self.heap = heap
        self.env = env
        self.ctl = ctl
        self.stop = False
        self.proc: subprocess.Popen | None = None
        self.wdt_deadline: float | None = None
        self.wdt_ms = 0
        self.reset_deadline: float | None = None
        self.halted = False

    def on_signal(self, signum, frame) -> None:
        self.stop = True

    def start(self, cause: str) -> None:
        self._drain_ctl()  # feeds queued by the previous incarnation must not arm this one
        self.wdt_deadline = None
        self.reset_deadline = None
        self.halted = False
        env = dict(self.env, PERCH_SIM_RESET_CAUSE=cause)
        cmd = [find_micropython(), "-X", f"heapsize={self.heap}", "-c", "import _board"]
        self.proc = subprocess.Popen(
            cmd, cwd=self.root, env=env, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent
        )
        _say(f"board started pid={self.proc.pid} cause={cause}")

    def _drain_ctl(self) -> None:
        while True:
            try:
                self.ctl.recv(64)
            except BlockingIOError:
                return

    def _handle_ctl(self) -> None:
        while True:
            try:
                msg = self.ctl.recv(64).decode("ascii", "replace").split()
            except BlockingIOError:
                return
            if not msg:
                continue
            if msg[0] == "wdt" and len(msg) == 2 and msg[1].isdigit():
                self.wdt_ms = int(msg[1])
                self.wdt_deadline = time.monotonic() + self.wdt_ms / 1000
            elif msg[0] == "feed" and self.wdt_deadline is not None:
                self.wdt_deadline = time.monotonic() + self.wdt_ms / 1000
            elif msg[0] == "reset":
                # machine.reset() announces itself, then exits 75; if device code swallows
                # that SystemExit, the grace period runs out and the reset is forced
                self.reset_deadline = time.monotonic() + RESET_GRACE_S
            else:
                _say(f"ignored control message {msg!r}")

    def _kill(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def _terminate(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                _say("board ignored SIGTERM, killing it")
                self._kill()

    def wait_event(self) -> str:
        """Block until the board exits, the WDT bites or we are told to stop."""
        assert self.proc is not None
        while True:
            if self.stop:
                return "stop"
            if not self.halted and self.proc.poll() is not None:
                return "exit"
            timeout = POLL_S
            now = time.monotonic()
            if self.reset_deadline is not None:
                if self.reset_deadline <= now:
                    return "reset"
                timeout = min(timeout, self.reset_deadline - now)
            if self.wdt_deadline is not None:
                if self.wdt_deadline <= now:
                    return "wdt"
                timeout = min(timeout, self.wdt_deadline - now)
            readable, _, _ = select.select([self.ctl], [], [], timeout)
            if readable:
                self._handle_ctl()

    def loop(self) -> int:
        self.start(PWRON_RESET)
        while True:
            event = self.wait_event()
            assert self.proc is not None
            if event == "stop":
                self._terminate()
                _say("stopped")
                return 0
            if event == "wdt":
                _say(f"watchdog not fed for {self.wdt_ms} ms: resetting the board")
                self._kill()
                self.start(WDT_RESET)
                continue
            if event == "reset":
                _say("machine.reset() did not exit (SystemExit swallowed?): forcing the reset")
                self._kill()
                self.start(SOFT_RESET)
                continue
            rc = self.proc.returncode
            if rc == EXIT_RESET or self.reset_deadline is not None:
                _say("machine.reset(): rebooting")
                self.start(SOFT_RESET)
            elif rc == -signal.SIGKILL:
                _say("board lost power (SIGKILL): powering it back on")
                self.start(PWRON_RESET)
            else:
                # An armed watchdog keeps running at the REPL, as on the chip, and will reset
                # the board; otherwise it stays halted until SIGTERM.
                _say(f"board halted at the REPL (exit code {rc}); SIGTERM stops the simulator")
                self.halted = True


def run(root, http_port=8080, dns_port=5353, heap="512k", world=None, env=None, mac=None) -> int:
    """Run a virtual board on `root` until SIGTERM/SIGINT; returns the exit status (0)."""
    root_path = Path(root).resolve()
    if not root_path.is_dir():
        raise NotADirectoryError(f"board root {root_path} is not a directory")
    ctl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ctl.bind(("127.0.0.1", 0))
    ctl.setblocking(False)
    sup = _Supervisor(
        root_path,
        _check_heap(heap),
        board_env(root_path, http_port, dns_port, world, env, mac, ctl.getsockname()[1]),
        ctl,
    )
    old = {s: signal.signal(s, sup.on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        return sup.loop()
    finally:
        if sup.proc is not None and sup.proc.poll() is None:
            sup._kill()
        for s, h in old.items():
            signal.signal(s, h)
        ctl.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="sim", description="Run a Perch virtual board.")
    p.add_argument("--root", required=True, help="the board's filesystem (a folder)")
    p.add_argument("--http-port", type=int, default=8080, help="web server port (PERCH_HTTP_PORT)")
    p.add_argument("--dns-port", type=int, default=5353, help="captive DNS port (PERCH_DNS_PORT)")
    p.add_argument("--heap", default="512k", help="MicroPython -X heapsize, e.g. 160k")
    p.add_argument("--world", help="JSON file describing the simulated radio environment")
    p.add_argument("--mac", help="12 hex digits; default derived from the root path")
    a = p.parse_args(argv)
    try:
        return run(a.root, a.http_port, a.dns_port, a.heap, a.world, mac=a.mac)
    except (OSError, ValueError) as e:
        p.error(str(e))
        return 2


if __name__ == "__main__":
    sys.exit(main())
