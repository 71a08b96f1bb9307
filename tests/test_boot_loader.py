"""boot.py, the stable loader, run under the MicroPython Unix port on crafted board roots:
trial boots, rollback with a reason, boot-loop fallback, incomplete slots, corrupt state."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MPY = str(Path(sys.executable).with_name("micropython"))
RUN = "exec(open('boot.py').read()); import sys; print(sys.path[0])"


def make_root(tmp_path, state, slots=("a", "b"), note=None):
    root = tmp_path / "root"
    for s, v in zip(("a", "b"), ("1.0.0", "1.1.0")):
        if s in slots:
            (root / "app" / s).mkdir(parents=True, exist_ok=True)
            (root / "app" / s / "manifest.json").write_text(json.dumps({"version": v}))
    (root / "app").mkdir(parents=True, exist_ok=True)
    if state is not None:
        (root / "app" / "state.json").write_text(
            state if isinstance(state, str) else json.dumps(state))
    if note:
        (root / "app" / "crash.txt").write_text(note)
    (root / "boot.py").write_bytes((REPO / "boot.py").read_bytes())
    return root


def boot(root, cause="PWRON_RESET"):
    env = dict(os.environ, MICROPYPATH=f"{REPO / 'tools' / 'sim' / 'board'}:.frozen",
               PERCH_SIM_RESET_CAUSE=cause)
    env.pop("PERCH_SIM_CTL", None)
    p = subprocess.run([MPY, "-c", RUN], cwd=root, env=env, capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0, p.stderr
    path0 = p.stdout.strip().splitlines()[-1]
    return path0, json.loads((root / "app" / "state.json").read_text())


def st(**kw):
    d = {"active": "b", "previous": "a", "trial": False, "tries": 0, "crashes": 0,
         "reason": None}
    d.update(kw)
    return d


def test_first_trial_boot_counts_and_runs_new_slot(tmp_path):
    root = make_root(tmp_path, st(trial=True))
    path0, s = boot(root)
    assert path0 == "app/b" and s["active"] == "b" and s["tries"] == 1 and s["trial"]


@pytest.mark.parametrize("note,cause,why", [
    ("ValueError: bad thing", "SOFT_RESET", "ValueError: bad thing"),
    (None, "WDT_RESET", "watchdog reset"),
    (None, "PWRON_RESET", "reset before the health check passed"),
])
def test_second_trial_boot_rolls_back_with_reason(tmp_path, note, cause, why):
    root = make_root(tmp_path, st(trial=True, tries=1), note=note)
    path0, s = boot(root, cause)
    assert path0 == "app/a"
    assert s["active"] == "a" and s["previous"] == "b" and not s["trial"]
    assert s["reason"] == "trial of 1.1.0 failed: " + why
    assert not (root / "app" / "crash.txt").exists()


def test_boot_loop_of_confirmed_version_falls_back(tmp_path):
    root = make_root(tmp_path, st())
    for n in (1, 2):
        (root / "app" / "crash.txt").write_text("OSError: 5")
        path0, s = boot(root, "SOFT_RESET")
        assert path0 == "app/b" and s["crashes"] == n
    (root / "app" / "crash.txt").write_text("OSError: 5")
    path0, s = boot(root, "SOFT_RESET")
    assert path0 == "app/a"
    assert s["reason"] == "boot loop: 1.1.0 crashed 3 times, last: OSError: 5"


def test_clean_reboots_do_not_count_as_crashes(tmp_path):
    root = make_root(tmp_path, st(crashes=2))
    path0, s = boot(root, "SOFT_RESET")
    assert path0 == "app/b" and s["crashes"] == 2 and s["active"] == "b"


def test_incomplete_active_slot_boots_previous(tmp_path):
    root = make_root(tmp_path, st(), slots=("a",))
    (root / "app" / "b").mkdir()  # renamed in, but manifest.json never written
    path0, s = boot(root)
    assert path0 == "app/a" and s["reason"] == "slot b is incomplete"


def test_corrupt_or_missing_state_boots_slot_a(tmp_path):
    root = make_root(tmp_path, '{"active": "b", "prev')
    assert boot(root)[0] == "app/a"
    root2 = make_root(tmp_path / "x", None, slots=("b",))
    path0, s = boot(root2)
    assert path0 == "app/b" and s["active"] == "b"
