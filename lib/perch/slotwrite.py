# Writing an app bundle into the inactive slot: the sink of unpack.Reader for app bundles,
# loaded once the manifest has been checked (slots.py has the power-cut invariants).
import os

from perch.config import lazy

STAGING = "app/.new"


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
        try:
            os.mkdir(cur)
        except OSError:
            pass  # there already (a file in the way fails at open)


class SlotSink:
    """Writes an app bundle into the inactive slot."""

    def __init__(self):
        self.f = None

    def begin(self, man, nfiles):
        # the state file code only for this and commit: not while the files are copied
        self.active = lazy("slots").load()["active"]
        rmtree(STAGING)
        makedirs(STAGING)

    def open(self, path, size):
        d = path.rpartition("/")[0]
        if d:
            makedirs(STAGING + "/" + d)
        self.f = open(STAGING + "/" + path, "wb")
        self.write = self.f.write

    def close(self):
        f = self.f
        self.f = None
        if f is not None:
            f.close()

    def abort(self):
        self.close()
        rmtree(STAGING)

    def commit(self, mpath):
        # manifest.json last, by rename: a slot without it is incomplete and never booted
        os.rename(mpath, STAGING + "/manifest.json")
        slots = lazy("slots")
        st = slots.load()
        if st["active"] != self.active:
            raise OSError("active slot changed during install")
        dst = "app/" + ("b" if st["active"] == "a" else "a")
        # unmark the old slot first: a power cut halfway through deleting it must not leave
        # a slot that still looks complete to boot.py or to a rollback
        try:
            os.remove(dst + "/manifest.json")
        except OSError:
            pass
        rmtree(dst)
        os.rename(STAGING, dst)
        st["previous"] = st["active"]
        st["active"] = dst[-1]
        st["trial"] = True
        st["tries"] = 0
        st["crashes"] = 0
        st["reason"] = None
        slots.save(st)
