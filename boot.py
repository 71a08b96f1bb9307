# Perch stable loader. Never replaced by an app OTA: it picks the active app slot, counts
# trial boots, rolls back to the previous slot, and puts the chosen slot first on sys.path
# so that main.py imports that slot's perch package.
#
# Rules (app/state.json, DESIGN.md):
# - a slot counts only when it holds manifest.json (written last by an install);
# - a trial version gets one boot: any later boot while still on trial (crash, reset, watchdog,
#   power cut) means it failed, and the previous slot becomes active again;
# - a confirmed version that crashes _LOOP times in a row falls back too (boot loop);
# - the reason is kept in the state file for /api/status, the page and MQTT.
import json
import os
import sys

import machine

_STATE = "app/state.json"
_CRASH = "app/crash.txt"
_LOOP = 3


def _has(slot):
    try:
        os.stat("app/%s/manifest.json" % slot)
        return True
    except OSError:
        return False


def _version(slot):
    try:
        with open("app/%s/manifest.json" % slot) as f:
            return json.load(f).get("version", "?")
    except (OSError, ValueError):
        return "?"


def _load():
    # -> (state, whether it was read intact); a damaged file is replaced by a fresh state
    try:
        with open(_STATE) as f:
            st = json.load(f)
        if isinstance(st, dict) and st.get("active") in ("a", "b"):
            return st, True
    except (OSError, ValueError):
        pass
    return {"active": "a", "previous": None, "trial": False, "tries": 0, "crashes": 0,
            "reason": None}, False


def _save(st):
    with open(_STATE + ".tmp", "w") as f:
        json.dump(st, f)
    os.rename(_STATE + ".tmp", _STATE)


def _crash_note():
    # main.py's last-resort handler (or OTA's health check) leaves why the app died
    try:
        with open(_CRASH) as f:
            note = f.read(200)
        os.remove(_CRASH)
        return note.strip() or "crashed"
    except OSError:
        return None


def _fall_back(st, reason):
    prev = st.get("previous")
    if not prev or prev == st["active"] or not _has(prev):
        return False
    print("boot: rolling back to %s: %s" % (_version(prev), reason))
    st["previous"] = st["active"]
    st["active"] = prev
    st["trial"] = False
    st["tries"] = 0
    st["crashes"] = 0
    st["reason"] = reason
    return True


def _confirm_s():
    try:
        getenv = getattr(os, "getenv", None)
        raw = getenv("PERCH_OTA_CONFIRM_S") if getenv else None
        if raw:
            return int(raw)
        with open("config.json") as f:
            return int(json.load(f).get("ota", {}).get("confirm_s", 120))
    except (OSError, ValueError, TypeError, AttributeError):
        return 120


def _pick():
    st, intact = _load()
    before = json.dumps(st) if intact else None
    note = _crash_note()
    wdt = machine.reset_cause() == machine.WDT_RESET
    act = st["active"]
    if not _has(act):
        if not _fall_back(st, "slot %s is incomplete" % act):
            other = "b" if act == "a" else "a"
            if _has(other):
                st["active"] = other
                st["trial"] = False
    elif st.get("trial"):
        if st.get("tries", 0) >= 1:
            why = note or ("watchdog reset" if wdt else "reset before the health check passed")
            if not _fall_back(st, "trial of %s failed: %s" % (_version(act), why)):
                st["trial"] = False
        else:
            st["tries"] = 1
    elif note is not None or wdt:
        st["crashes"] = st.get("crashes", 0) + 1
        if st["crashes"] >= _LOOP:
            _fall_back(st, "boot loop: %s crashed %d times, last: %s"
                       % (_version(act), st["crashes"], note or "watchdog reset"))
    if json.dumps(st) != before:
        _save(st)
    if st.get("trial"):
        # a trial that hangs before the app feeds its watchdog must still reset into us
        machine.WDT(timeout=max(10, _confirm_s()) * 1000)
    return st["active"]


try:
    sys.path.insert(0, "app/" + _pick())
except Exception as e:  # the loader itself must never stop the board from starting
    sys.print_exception(e)
    sys.path.insert(0, "app/a")
# boot.py and main.py share one globals dict (__main__, as on the chip): without this the
# loader's functions would sit in RAM for the board's lifetime.
for _n in ("_has", "_version", "_load", "_save", "_crash_note", "_fall_back", "_confirm_s",
           "_pick", "_n"):
    globals().pop(_n, None)
