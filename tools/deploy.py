"""Install Perch onto a board over serial with mpremote: boot.py, main.py, slot a, config.

The board's filesystem is laid out exactly as `sim` lays out an empty root, then copied in
one mpremote session. `resume` keeps mpremote from soft-resetting the board first, which
also lets it drive a virtual board's REPL on a pty.
"""

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import build


def mpremote():
    exe = Path(sys.executable).parent / "mpremote"
    return str(exe) if exe.exists() else "mpremote"


# Runs on the board before the copy: a fresh install replaces both slots and the slot state.
WIPE_APP = """import os
def rm(p):
    try:
        st = os.stat(p)
    except OSError:
        return
    if st[0] & 0x4000:
        for n in os.listdir(p):
            rm(p + '/' + n)
        os.rmdir(p)
    else:
        os.remove(p)
rm('app')
"""


def deploy(port, config=None, reset=True):
    seed = json.loads(Path(config).read_text()) if config else None
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp) / "board"
        stage.mkdir()
        manifest = build.install_root(stage, build.build(out_dir=tmp), seed_config=seed)
        cmd = [mpremote(), "connect", port, "resume",
               "exec", WIPE_APP,
               "+", "fs", "cp", "-r", "app", ":app",
               "+", "fs", "cp", "boot.py", ":boot.py",
               "+", "fs", "cp", "main.py", ":main.py"]
        if seed is not None:
            cmd += ["+", "fs", "cp", "config.json", ":config.json"]
        if reset:
            cmd += ["+", "reset"]
        subprocess.run(cmd, cwd=stage, check=True)
        shutil.rmtree(stage)
    print("deployed Perch %s to %s" % (manifest["version"], port))
