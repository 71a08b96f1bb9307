# A/B app slots and their state file (DESIGN.md "Board filesystem"): what the running app
# needs. Writing a slot (slotwrite) and rolling back (ota_cmd) load only when used.
#
# Invariants that make power cuts harmless:
# - the running slot is never written; installs go to app/.new, then one directory rename
#   turns it into the inactive slot, then one atomic state write makes it active;
# - a slot is complete only when it holds manifest.json, which is written last;
# - app/state.json is replaced by rename, never rewritten in place.
import json
import os

from perch.config import write_atomic

STATE = "app/state.json"


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def slot_version(name):
    # The version from the first line of the slot's manifest.json: a bundle's manifest puts
    # the file list on the lines after it, so the list is never read here.
    try:
        with open("app/%s/manifest.json" % name) as f:
            line = f.readline(1024)
        if line.endswith("[\n"):
            line = line[:-1] + "]}"
        return json.loads(line).get("version")
    except (OSError, ValueError, AttributeError, TypeError):
        return None


def load():
    st = {"active": "a", "previous": None, "trial": False, "tries": 0, "crashes": 0,
          "reason": None}
    try:
        with open(STATE) as f:
            got = json.load(f)
        if isinstance(got, dict) and got.get("active") in ("a", "b"):
            st.update(got)
    except (OSError, ValueError):
        pass
    return st


def save(st):
    write_atomic(STATE, json.dumps(st))


def confirm(st=None):
    # the running trial version passed its health check: keep it
    st = st or load()
    if st.get("trial") or st.get("tries") or st.get("crashes"):
        st["trial"] = False
        st["tries"] = 0
        st["crashes"] = 0
        save(st)
    return st
