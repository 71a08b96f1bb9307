# A/B app slots and their state file (DESIGN.md "Board filesystem").
#
# Invariants that make power cuts harmless:
# - the running slot is never written; installs go to app/.new, then one directory rename
#   turns it into the inactive slot, then one atomic state write makes it active;
# - a slot is complete only when it holds manifest.json, which is written last;
# - app/state.json is replaced by rename, never rewritten in place.
import json
import os

from micropython import const

from perch.config import write_atomic

ROOT = "app"
STATE = "app/state.json"
STAGING = "app/.new"
ZTMP = "app/.z"
_MARGIN = const(16384)


def default_state():
    return {"active": "a", "previous": None, "trial": False, "tries": 0, "crashes": 0,
            "reason": None}


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def other(name):
    return "b" if name == "a" else "a"


def slot_dir(name):
    return ROOT + "/" + name


def slot_manifest(name):
    try:
        with open(slot_dir(name) + "/manifest.json") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def slot_version(name):
    m = slot_manifest(name) if name else None
    return m.get("version") if isinstance(m, dict) else None


def load():
    try:
        with open(STATE) as f:
            st = json.load(f)
        if isinstance(st, dict) and st.get("active") in ("a", "b"):
            for k, v in default_state().items():
                st.setdefault(k, v)
            return st
    except (OSError, ValueError):
        pass
    return default_state()


def write_json_atomic(path, obj):
    write_atomic(path, json.dumps(obj))


def save(st):
    write_json_atomic(STATE, st)


def rmtree(path):
    try:
        entries = list(os.ilistdir(path))
    except OSError:
        try:
            os.remove(path)
        except OSError:
            pass
        return
    for e in entries:
        p = path + "/" + e[0]
        if e[1] == 0x4000:
            rmtree(p)
        else:
            os.remove(p)
    os.rmdir(path)


def makedirs(path):
    cur = ""
    for part in path.split("/"):
        cur = cur + "/" + part if cur else part
        if not exists(cur):
            os.mkdir(cur)


def free_bytes():
    try:
        s = os.statvfs(".")
        return max(0, s[0] * s[4] - _MARGIN)
    except (OSError, AttributeError):
        return 0x7FFFFFFF


def confirm(st=None):
    # the running trial version passed its health check: keep it
    st = st or load()
    if st.get("trial") or st.get("tries") or st.get("crashes"):
        st["trial"] = False
        st["tries"] = 0
        st["crashes"] = 0
        save(st)
    return st


def rollback(reason):
    """Make the previous slot active again; it was confirmed before, so it is not on trial."""
    st = load()
    prev = st.get("previous")
    if not prev or slot_version(prev) is None:
        raise OSError("no previous version to roll back to")
    st["previous"] = st["active"]
    st["active"] = prev
    st["trial"] = False
    st["tries"] = 0
    st["crashes"] = 0
    st["reason"] = reason
    save(st)
    return st


class SlotSink:
    """Bundle sink that writes the inactive slot (see bundle.Reader)."""

    def __init__(self):
        self.f = None
        self.st = load()
        self.target = other(self.st["active"])

    def tmp_path(self):
        return ZTMP

    def begin(self, manifest):
        self.manifest = manifest
        rmtree(STAGING)
        makedirs(STAGING)

    def open(self, path, size):
        d = path.rpartition("/")[0]
        if d:
            makedirs(STAGING + "/" + d)
        self.f = open(STAGING + "/" + path, "wb")

    def write(self, mv):
        f = self.f
        if f is not None:
            f.write(mv)

    def close(self):
        f = self.f
        if f is not None:
            f.close()
        self.f = None

    def abort(self):
        if self.f:
            self.f.close()
            self.f = None
        rmtree(STAGING)
        rmtree(ZTMP)

    def commit(self):
        rmtree(ZTMP)
        # manifest.json last: a slot without it is incomplete and never booted
        write_json_atomic(STAGING + "/manifest.json", self.manifest)
        dst = slot_dir(self.target)
        # unmark the old slot first: a power cut halfway through deleting it must not leave
        # a slot that still looks complete to boot.py or to a rollback
        try:
            os.remove(dst + "/manifest.json")
        except OSError:
            pass
        rmtree(dst)
        os.rename(STAGING, dst)
        st = load()
        if st["active"] == self.target:
            raise OSError("active slot changed during install")
        st["previous"] = st["active"]
        st["active"] = self.target
        st["trial"] = True
        st["tries"] = 0
        st["crashes"] = 0
        st["reason"] = None
        save(st)
