"""tools/fleet.py: one command to several virtual boards over the private RabbitMQ node."""

import re
import subprocess
import sys

from conftest import TOOLS
from mqtt_helpers import mqtt_board, wait_status


def fleet(*args, timeout=60):
    return subprocess.run([sys.executable, str(TOOLS / "fleet.py"), *args],
                          capture_output=True, text=True, timeout=timeout)


def test_fleet_sets_every_board_and_names_the_silent_one(board, tmp_path, live_broker):
    br = live_broker
    url = br.url(br.user, br.password)
    boards = [mqtt_board(board, tmp_path, url, interval=3) for _ in range(2)]
    ids = [b.status()["device_id"] for b in boards]
    for b in boards:
        wait_status(b, lambda s: s["mqtt"]["state"] == "connected", what="connected")

    r = fleet(url, "interval", "7", *ids)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 of 2 answered ok" in r.stdout
    for b in boards:
        assert b.status()["mqtt"]["interval_s"] == 7

    # A device that is not there is reported, and fails the run.
    r = fleet(url, "interval", "8", ids[0], "perch-000000", "--timeout", "5")
    assert r.returncode == 1
    assert re.search(r"perch-000000 +NO ANSWER", r.stdout) and "1 of 2 answered ok" in r.stdout

    # A command a board refuses comes back as an error row.
    r = fleet(url, "interval", "0", ids[1])
    assert r.returncode == 1 and "ERROR" in r.stdout and "sample_interval_s" in r.stdout


def test_fleet_rejects_bad_arguments():
    r = fleet("mqtt://127.0.0.1:1", "interval", "soon", "perch-000000")
    assert r.returncode == 2 and "bad argument for interval" in r.stderr
    r = fleet("mqtt://127.0.0.1:1", "ota")
    assert r.returncode == 2 and "ota needs an argument" in r.stderr
