# Perch stable loader. Never replaced by an app OTA: it picks the active app slot and puts
# it first on sys.path, so that main.py imports that slot's perch package.
import json
import sys


def _active_slot():
    try:
        with open("app/state.json") as f:
            slot = json.load(f).get("active", "a")
    except (OSError, ValueError):
        slot = "a"
    return slot if slot in ("a", "b") else "a"


sys.path.insert(0, "app/" + _active_slot())
