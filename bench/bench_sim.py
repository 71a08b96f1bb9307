"""Virtual-board costs: how long a simulated reboot takes, what a radio call costs the loop."""

import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from sim_helpers import MICROPYTHON, Sim, board_env, run_mp, write_world

RESETS = 5
CALLS = 5000

MAIN = (
    """
import machine
try:
    n = int(open('n').read())
except OSError:
    n = 0
open('n', 'w').write(str(n + 1))
print('BOOTED', n)
if n < %d:
    print('RESET')
    machine.reset()
"""
    % RESETS
)

# Per-call cost of the radio status the Wi-Fi supervisor and socket.getaddrinfo poll while
# connected (each call checks the world file), against an empty function call in the same process.
CALLS_PY = """
import network, time
sta = network.WLAN(network.STA_IF)
sta.active(True)
sta.connect('home', 'pw')
while not sta.isconnected():
    time.sleep_ms(1)
def nothing():
    return False
def per_call(f):
    t0 = time.ticks_us()
    for _ in range(%d):
        f()
    return time.ticks_diff(time.ticks_us(), t0) / %d
print(per_call(sta.isconnected), per_call(nothing))
""" % (CALLS, CALLS)


def _reboot_times(tmp):
    root = tmp / "root"
    root.mkdir()
    (root / "main.py").write_text(MAIN)
    sim = Sim(root)
    times = []
    try:
        for n in range(RESETS):
            sim.expect(r"^B RESET$")
            t0 = time.monotonic()
            sim.expect(r"^B BOOTED %d$" % (n + 1))
            times.append((time.monotonic() - t0) * 1000)
    finally:
        sim.stop()
    return times


def _bare_starts(tmp):
    times = []
    for _ in range(RESETS):
        t0 = time.monotonic()
        subprocess.run([MICROPYTHON, "-c", "print(1)"], cwd=tmp, capture_output=True, check=True)
        times.append((time.monotonic() - t0) * 1000)
    return times


def _call_costs(tmp, settled):
    world = tmp / ("world-%s.json" % settled)
    write_world(world, {"networks": [{"ssid": "home", "password": "pw"}], "connect_ms": 0})
    if settled:
        old = time.time() - 60
        os.utime(world, (old, old))
    r = run_mp(CALLS_PY, tmp, board_env(world))
    wlan, bare = (float(x) for x in r.stdout.split())
    return wlan, bare


def rows(bench):
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        reboot = statistics.median(_reboot_times(tmp))
        bare = statistics.median(_bare_starts(tmp))
        settled, call = _call_costs(tmp, True)
        fresh, _ = _call_costs(tmp, False)
    return [
        (
            "sim: machine.reset() -> main.py running again, median of %d" % RESETS,
            round(reboot),
            "ms",
            "< 1.5 s (part of start -> portal)",
            "micropython -c 'print(1)': %d ms" % round(bare),
        ),
        (
            "sim: WLAN.isconnected(), world file settled",
            round(settled, 2),
            "us/call",
            "< 50 ms loop stall",
            "empty call: %.2f us" % call,
        ),
        (
            "sim: WLAN.isconnected(), world file just rewritten (re-parsed)",
            round(fresh, 2),
            "us/call",
            "< 50 ms loop stall",
            "empty call: %.2f us" % call,
        ),
    ]


if __name__ == "__main__":
    for row in rows(None):
        print(row)
