# The OTA flash model of the virtual board's `esp32` module: app partitions ota_0 / ota_1 of
# the 4 MiB OTA partition table and the boot selection (otadata), as files under .flash/ in
# the board root. esp32 hands Partition out through machine._lazy, so this module is freed
# once no partition object is left, as a rarely used part of a C module should cost no heap.
#
# Bootloader model (ESP-IDF with CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE): set_boot() marks the
# image NEW; the first boot runs it as PENDING_VERIFY; a reset before
# mark_app_valid_cancel_rollback() aborts it and the previous image boots again.
import json
import os

from micropython import const

_SIZE = const(0x180000)  # each app partition; ota_0 at 0x10000, ota_1 right after it


def _load():
    try:
        with open(".flash/otadata.json") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {"boot": "ota_0", "previous": None, "state": "valid"}


def _save(d):
    try:
        os.mkdir(".flash")
    except OSError:
        pass
    with open(".flash/otadata.tmp", "w") as f:
        json.dump(d, f)
    os.rename(".flash/otadata.tmp", ".flash/otadata.json")


def _boot():
    # The bootloader, run by esp32 once per boot, a MicroPython process (esp32 marks the
    # process in its environment, so a re-import is no boot): -> the label it boots.
    d = _load()
    if not os.getenv("PERCH_SIM_BOOTED") and d["state"] in ("new", "pending_verify"):
        if d["state"] == "new":
            d["state"] = "pending_verify"
        elif d["previous"]:
            # reset before the app confirmed itself: the bootloader rolls back
            d["boot"], d["previous"] = d["previous"], d["boot"]
            d["state"] = "aborted"
            d["aborted"] = d["previous"]
        _save(d)
    return d["boot"]


class Partition:
    BOOT = const(0)
    RUNNING = const(1)
    TYPE_APP = const(0)
    TYPE_DATA = const(1)

    def __init__(self, id, block_size=4096):
        if id == Partition.BOOT:
            id = _load()["boot"]
        elif id == Partition.RUNNING:
            id = __import__("esp32")._running
        if id not in ("ota_0", "ota_1"):
            raise ValueError("partition not found")
        self.label = id
        self.bs = block_size
        self.path = ".flash/%s.bin" % id

    def __repr__(self):
        return "<Partition type=%d, subtype=%d, address=%d, size=%d, label=%s, encrypted=%d>" % (
            self.info())

    @staticmethod
    def find(type=TYPE_APP, subtype=0xFF, label=None):
        return [Partition(x) for x in ("ota_0", "ota_1") if type == Partition.TYPE_APP
                and label in (None, x) and subtype in (0xFF, 0x10 + int(x[-1]))]

    def info(self):
        n = int(self.label[-1])
        return (Partition.TYPE_APP, 0x10 + n, 0x10000 + n * _SIZE, _SIZE, self.label, False)

    def _pos(self, block_num, offset, n):
        pos = block_num * self.bs + offset
        if pos < 0 or pos + n > _SIZE:
            raise OSError(22)  # EINVAL, as the port reports an out-of-range access
        return pos

    def readblocks(self, block_num, buf, offset=0):
        pos = self._pos(block_num, offset, len(buf))
        n = 0
        try:
            with open(self.path, "rb") as f:
                f.seek(pos)
                n = f.readinto(buf) or 0
        except OSError:
            pass
        for i in range(n, len(buf)):
            buf[i] = 0xFF  # never written: erased flash

    def writeblocks(self, block_num, buf, offset=None):
        pos = self._pos(block_num, offset or 0, len(buf))
        try:
            os.mkdir(".flash")
        except OSError:
            pass
        try:
            f = open(self.path, "r+b")
        except OSError:
            f = open(self.path, "w+b")
        with f:
            f.seek(pos)
            f.write(buf)
            # a whole-block write: the port erases the blocks first, so the rest of the last
            # block reads as erased flash (written in slices: erasing costs the chip no RAM)
            n = 0 if offset is not None else -len(buf) % self.bs
            while n > 0:
                f.write(b"\xff" * min(n, 256))
                n -= 256

    def ioctl(self, op, arg=None):
        if op == 4:  # block count
            return _SIZE // self.bs
        if op == 5:  # block size
            return self.bs
        if op == 6:  # erase a block
            self.writeblocks(arg, b"\xff")
        return 0

    def set_boot(self):
        # esp_ota_set_boot_partition() refuses an image without the 0xE9 header byte
        head = bytearray(1)
        self.readblocks(0, head)
        if head[0] != 0xE9:
            raise OSError(-5379)  # ESP_ERR_OTA_VALIDATE_FAILED
        d = _load()
        if self.label != d["boot"]:
            d["previous"] = __import__("esp32")._running
        d["boot"] = self.label
        d["state"] = "new"
        _save(d)

    def get_next_update(self):
        return Partition("ota_1" if self.label == "ota_0" else "ota_0")

    @staticmethod
    def mark_app_valid_cancel_rollback():
        d = _load()
        if d["state"] == "pending_verify" and d["boot"] == __import__("esp32")._running:
            d["state"] = "valid"
            _save(d)
