"""deploy over mpremote to a virtual board's REPL on a pty, then boot that root."""

import os
import shutil
import subprocess
import sys
import time

import pytest

from conftest import MICROPYTHON, REPO, TOOLS, Board


@pytest.mark.skipif(not shutil.which("socat"), reason="socat is installed by make test")
def test_deploy_then_boot_serves_status(tmp_path):
    root = tmp_path / "board"
    root.mkdir()
    # Leftovers of an earlier install must not survive a fresh deploy.
    (root / "app" / "b" / "perch").mkdir(parents=True)
    pty = tmp_path / "ttyBOARD"
    env = dict(os.environ, MICROPYPATH="%s:.frozen" % (TOOLS / "sim" / "board"))
    repl = subprocess.Popen(
        ["socat", "PTY,link=%s,raw,echo=0" % pty,
         "EXEC:%s -i,pty,raw,echo=0,stderr,setsid" % MICROPYTHON],
        cwd=root, env=env)
    try:
        for _ in range(100):
            if pty.exists():
                break
            time.sleep(0.05)
        seed = tmp_path / "seed.json"
        seed.write_text('{"name": "deployed"}')
        subprocess.run([sys.executable, str(TOOLS / "perch.py"), "deploy", "--port", str(pty),
                        "--config", str(seed), "--no-reset"], check=True, cwd=REPO, timeout=120)
    finally:
        repl.terminate()
        repl.wait(10)
    assert not (root / "app" / "b").exists()
    assert (root / "app" / "a" / "perch" / "app.mpy").exists()
    board = Board(root).start()
    try:
        s = board.status()
        assert s["name"] == "deployed"
        assert s["version"] == "1.0.0"
    finally:
        assert board.stop() == 0
