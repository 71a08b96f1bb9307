# Firmware images: a "firmware" bundle carries a MicroPython .app-bin that is written to the
# next OTA partition in 4096-byte blocks, checked, then selected with set_boot().  The new
# image boots pending-verify; ota.py marks it valid only after the health check, so a reset
# before that makes the bootloader go back to the previous image.
import json
import os

from micropython import const

from perch import hw, slots
from perch.config import write_atomic
from perch.unpack import BundleError

_BLOCK = const(4096)
_IMAGE_MAGIC = const(0xE9)
_DESC_MAGIC = const(0xABCD5432)  # esp_app_desc_t.magic_word, at 0x20 in the image
_NAME = "firmware.app-bin"
PENDING = "app/firmware.json"  # what we set to boot, to tell a revert from a confirm


def check_image(head):
    """head: the first block of an image; returns the version string in its app descriptor."""
    if head[0] != _IMAGE_MAGIC:
        raise BundleError("not an ESP32 app image (byte 0 is 0x%02x, not 0xE9)" % head[0])
    magic = head[0x20] | head[0x21] << 8 | head[0x22] << 16 | head[0x23] << 24
    if magic != _DESC_MAGIC:
        raise BundleError("no app descriptor (magic 0x%08x at 0x20)" % magic)
    v = bytes(head[0x30:0x50])
    return v[: v.find(b"\0")].decode() if b"\0" in v else v.decode()


def pending():
    try:
        with open(PENDING) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def clear_pending():
    try:
        os.remove(PENDING)
    except OSError:
        pass


class PartitionSink:
    """Bundle sink for firmware bundles (see bundle.Reader)."""

    def __init__(self):
        self.running, self.part = hw.ota_partitions()
        self.size = self.part.info()[3]
        self.buf = bytearray(_BLOCK)
        self.fill = 0
        self.block = 0

    def begin(self, manifest, nfiles):
        if nfiles != 1:
            raise BundleError("firmware bundle must hold exactly %s" % _NAME)
        self.version = manifest["version"]

    def open(self, path, size):
        # checked before the first block is written
        if path != _NAME:
            raise BundleError("firmware bundle must hold exactly %s" % _NAME)
        if size > self.size:
            raise BundleError("image is %d bytes, partition %s holds %d"
                              % (size, hw.partition_label(self.part), self.size))

    def write(self, mv):
        i = 0
        n = len(mv)
        buf = self.buf
        while i < n:
            k = min(n - i, _BLOCK - self.fill)
            buf[self.fill:self.fill + k] = mv[i:i + k]
            self.fill += k
            i += k
            if self.fill == _BLOCK:
                self._flush()

    def _flush(self):
        for i in range(self.fill, _BLOCK):
            self.buf[i] = 0xFF
        self.part.writeblocks(self.block, self.buf)
        self.block += 1
        self.fill = 0

    def close(self):
        if self.fill:
            self._flush()

    def abort(self):
        pass  # the partition is not selected, so a half-written image is never booted

    def commit(self, mpath):
        self.part.readblocks(0, self.buf)
        desc = check_image(self.buf)
        label = hw.partition_label(self.part)
        write_atomic(PENDING, json.dumps({"version": self.version, "label": label, "desc": desc,
                                          "from": hw.partition_label(self.running)}))
        self.part.set_boot()


# ---------------------------------------------------------------- boots of a new image


def boot(o, st):
    fw = pending()
    try:
        running = hw.partition_label(hw.ota_partitions()[0])
    except (OSError, ValueError):
        running = None
    if fw and running == fw.get("label"):
        o.fw_trial = fw  # first boots of a new image: confirm it or the bootloader reverts
        return
    clear_pending()
    if fw:
        st["reason"] = o.reason = ("firmware %s was not confirmed; the bootloader went "
                                   "back to %s" % (fw.get("version"), running))
        slots.save(st)


def confirmed(o):
    from perch.ota import LOG

    clear_pending()
    LOG.info("firmware image confirmed", version=o.fw_trial.get("version"))
    o.fw_trial = None
