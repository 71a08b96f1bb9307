"""The virtual-board supervisor (tools/sim/runner.py) and loader (_board.py), on fake roots.

Each test writes its own tiny boot.py/main.py; main.py does what the root's `plan` file says
for the n-th boot, and prints one BOOT line about itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from sim_helpers import RUNNER, Sim, runner

BOOT_PY = """
import time
START = time.ticks_ms()
FROM_BOOT = 'boot.py ran'
"""

MAIN_PY = """
import gc, machine, os, sys, time

def uptime():
    return time.ticks_diff(time.ticks_ms(), START)

try:
    n = int(open('boots').read())
except OSError:
    n = 0
open('boots', 'w').write(str(n + 1))  # the filesystem survives resets
plan = open('plan').read().split()
act = plan[n] if n < len(plan) else 'idle'
print('BOOT', n, machine.reset_cause(), act, __name__, FROM_BOOT.replace(' ', '_'))
print('ENV', os.getenv('PERCH_HTTP_PORT'), os.getenv('PERCH_DNS_PORT'),
      os.getenv('PERCH_SIM_WORLD'), os.getenv('PERCH_FOO'), machine.unique_id().hex(),
      gc.mem_free() + gc.mem_alloc())
print('UP', n, uptime())
if act == 'reset':
    time.sleep_ms(300)
    print('UPTIME', uptime())
    machine.reset()
elif act == 'wdt':
    machine.WDT(timeout=300).feed()
elif act == 'feed':
    w = machine.WDT(timeout=3000)
    for i in range(90):  # 4.5 s: longer than the timeout, fed well inside it
        w.feed()
        time.sleep_ms(50)
    print('FED')
elif act == 'raise':
    raise ValueError('boom')
elif act == 'wdtraise':
    machine.WDT(timeout=300)
    raise ValueError('crash with the watchdog armed')
elif act == 'swallow':
    try:
        machine.reset()
    except BaseException:
        print('swallowed')
elif act == 'exit':
    sys.exit(3)
if act != 'raise':
    while True:
        time.sleep_ms(50)
"""


def make_root(path, plan, main=MAIN_PY, boot=BOOT_PY):
    path.mkdir(exist_ok=True)
    if boot is not None:
        (path / "boot.py").write_text(boot)
    if main is not None:
        (path / "main.py").write_text(main)
    (path / "plan").write_text(plan)
    return path


@pytest.fixture
def sims():
    started = []

    def start(root, *args, **kw):
        s = Sim(root, *args, **kw)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def boot_line(sim, n):
    m = sim.expect(rf"^B BOOT {n} (\d+) (\w+) (\S+) (\S+)$")
    return int(m.group(1)), m.group(2), m.group(3), m.group(4)


def started_pid(sim, cause):
    return int(sim.expect(rf"^S .*board started pid=(\d+) cause={cause}$").group(1))


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead too
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_boot_then_main_share_globals(tmp_path, sims):
    sim = sims(make_root(tmp_path / "r", "idle"))
    cause, act, name, from_boot = boot_line(sim, 0)
    assert (cause, act, name, from_boot) == (1, "idle", "__main__", "boot.py_ran")


def test_reset_reboots_on_same_root_with_fresh_uptime(tmp_path, sims):
    sim = sims(make_root(tmp_path / "r", "reset idle"))
    pid0 = started_pid(sim, "PWRON_RESET")
    assert boot_line(sim, 0)[0] == 1
    up0 = int(sim.expect(r"^B UPTIME (\d+)$").group(1))
    sim.expect(r"^S .*machine.reset\(\): rebooting")
    pid1 = started_pid(sim, "SOFT_RESET")
    assert boot_line(sim, 1)[0] == 5  # SOFT_RESET, as the ESP32 reports after machine.reset()
    assert pid1 != pid0 and not alive(pid0)
    # a new process: the uptime counter starts again
    up1 = int(sim.expect(r"^B UP 1 (\d+)$").group(1))
    assert up1 < up0
    assert (tmp_path / "r" / "boots").read_text() == "2"
    assert sim.stop() == 0


def test_watchdog_not_fed_resets_board(tmp_path, sims):
    sim = sims(make_root(tmp_path / "r", "wdt idle"))
    assert boot_line(sim, 0)[0] == 1
    sim.expect(r"^S .*watchdog not fed for 300 ms")
    assert boot_line(sim, 1)[0] == 3  # WDT_RESET
    # the new boot did not arm a watchdog: it keeps running
    assert not [line for line in sim.out.drain(1.0) if "watchdog" in line]


def test_fed_watchdog_keeps_board_running(tmp_path, sims):
    sim = sims(make_root(tmp_path / "r", "feed"))
    assert boot_line(sim, 0)[0] == 1
    sim.expect(r"^B FED$")
    assert "watchdog" not in sim.out.text()


def test_armed_watchdog_resets_a_board_sitting_at_the_repl(tmp_path, sims):
    sim = sims(make_root(tmp_path / "r", "wdtraise idle"))
    sim.expect(r"^S .*halted at the REPL \(exit code 1\)")
    sim.expect(r"^S .*watchdog not fed")
    assert boot_line(sim, 1)[0] == 3


def test_sigkill_of_board_is_a_power_cut(tmp_path, sims):
    sim = sims(make_root(tmp_path / "r", "idle idle"))
    boot_line(sim, 0)
    pid = sim.board_pid()
    os.kill(pid, signal.SIGKILL)
    sim.expect(r"^S .*lost power")
    assert boot_line(sim, 1)[0] == 1  # PWRON_RESET
    assert sim.board_pid() != pid


def test_exception_leaves_board_at_the_repl(tmp_path, sims):
    sim = sims(make_root(tmp_path / "r", "raise idle"))
    boot_line(sim, 0)
    sim.expect(r"ValueError: boom")
    sim.expect(r"^S .*halted at the REPL \(exit code 1\)")
    assert not [line for line in sim.out.drain(1.0) if "board started" in line]
    assert sim.stop() == 0
    assert (tmp_path / "r" / "boots").read_text() == "1"


def test_other_exit_code_halts(tmp_path, sims):
    sim = sims(make_root(tmp_path / "r", "exit idle"))
    sim.expect(r"^S .*halted at the REPL \(exit code 3\)")
    assert sim.stop() == 0


def test_missing_main_py_sits_after_boot(tmp_path, sims):
    boot = "print('only boot.py here')\n"
    sim = sims(make_root(tmp_path / "r", "", main=None, boot=boot))
    sim.expect(r"^B only boot.py here$")
    sim.expect(r"^S .*halted at the REPL \(exit code 0\)")


def test_swallowed_reset_is_forced(tmp_path, sims):
    sim = sims(make_root(tmp_path / "r", "swallow idle"))
    sim.expect(r"^B swallowed$")
    sim.expect(r"^S .*forcing the reset")
    assert boot_line(sim, 1)[0] == 5


def test_sigterm_stops_cleanly(tmp_path, sims):
    sim = sims(make_root(tmp_path / "r", "idle"))
    boot_line(sim, 0)
    pid = sim.board_pid()
    assert sim.stop() == 0
    assert not alive(pid)


def test_options_and_environment(tmp_path, sims):
    world = tmp_path / "world.json"
    world.write_text("{}")
    root = make_root(tmp_path / "r", "idle")
    args = ["--http-port", "18123", "--dns-port", "15999", "--heap", "256k", "--world"]
    args += [str(world), "--mac", "02:11:22:33:44:55"]
    sim = sims(root, *args, env={"PERCH_FOO": "bar"})
    m = sim.expect(r"^B ENV (\S+) (\S+) (\S+) (\S+) (\S+) (\d+)$")
    assert m.groups()[:5] == ("18123", "15999", str(world.resolve()), "bar", "021122334455")
    heap = int(m.group(6))
    assert 0.9 * 256 * 1024 <= heap <= 256 * 1024


def test_default_mac_is_stable_per_root(tmp_path, sims):
    a = sims(make_root(tmp_path / "a", "idle"))
    b = sims(make_root(tmp_path / "b", "idle"))
    mac_a = a.expect(r"^B ENV \S+ \S+ \S+ \S+ (\w+)").group(1)
    mac_b = b.expect(r"^B ENV \S+ \S+ \S+ \S+ (\w+)").group(1)
    assert mac_a == runner.default_mac(tmp_path / "a")
    assert mac_b == runner.default_mac(tmp_path / "b")
    assert mac_a != mac_b and len(mac_a) == 12


@pytest.mark.parametrize(
    "args,complaint",
    [
        (["--mac", "nothex"], "--mac"),
        (["--http-port", "eighty"], "--http-port"),
        (["--heap", "lots"], "--heap"),
    ],
)
def test_bad_options_are_named(tmp_path, args, complaint):
    root = make_root(tmp_path / "r", "idle")
    r = subprocess.run(
        [sys.executable, str(RUNNER), "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert complaint in r.stderr


def test_missing_root_is_refused(tmp_path):
    r = subprocess.run(
        [sys.executable, str(RUNNER), "--root", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "not a directory" in r.stderr


def test_board_dies_with_a_killed_supervisor(tmp_path, sims):
    sim = sims(make_root(tmp_path / "r", "idle"))
    boot_line(sim, 0)
    pid = sim.board_pid()
    sim.p.kill()
    sim.p.wait()
    end = time.monotonic() + 20
    while alive(pid) and time.monotonic() < end:
        time.sleep(0.02)
    assert not alive(pid)
