# Host implementation of the ESP32 port's `esp32` module for the virtual board: the OTA app
# partitions, the boot selection (otadata) and the bootloader's pending-verify rollback, all
# backed by files under .flash/ in the board root; raw_temperature() from the world file.
#
# Bootloader model (ESP-IDF with CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE): set_boot() marks the
# image NEW; the first boot runs it as PENDING_VERIFY; a reset before
# mark_app_valid_cancel_rollback() aborts it and the previous image boots again.  A "boot" is
# one MicroPython process: the first import of this module in a process plays the bootloader.
import json
import os

import _world
from micropython import const

_DIR = ".flash"
_OTADATA = ".flash/otadata.json"
_BLOCK = const(4096)
_APP_SIZE = const(0x180000)  # ota_0 / ota_1 of the 4 MiB OTA partition table
_LAYOUT = (("ota_0", 0x10, 0x010000), ("ota_1", 0x11, 0x190000))


def _erased(n):
    # made per write, not kept: on the chip erasing costs no RAM, so the model must not either
    return b"\xff" * n


def raw_temperature():
    # the world gives °C (sensors.mcu_temperature); the ESP32 reports °F
    c = (_world.get("sensors") or {}).get("mcu_temperature", 45.0)
    return int(c * 1.8 + 32)


def _mkdir():
    try:
        os.mkdir(_DIR)
    except OSError:
        pass


def _load():
    try:
        with open(_OTADATA) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {"boot": "ota_0", "previous": None, "state": "valid", "pid": None}


def _save(d):
    _mkdir()
    with open(_OTADATA + ".tmp", "w") as f:
        json.dump(d, f)
    os.rename(_OTADATA + ".tmp", _OTADATA)


def _pid():
    try:
        with open("/proc/self/stat") as f:
            return f.read(32).split()[0]
    except OSError:
        return "0"


def _bootloader():
    d = _load()
    pid = _pid()
    if d.get("pid") == pid:
        return d
    d["pid"] = pid
    st = d.get("state")
    if st == "new":
        d["state"] = "pending_verify"
    elif st == "pending_verify" and d.get("previous"):
        # reset before the app confirmed itself: the bootloader rolls back
        d["boot"], d["previous"] = d["previous"], d["boot"]
        d["state"] = "aborted"
        d["aborted"] = d["previous"]
    _save(d)
    return d


_ota = _bootloader()
_running = _ota["boot"]


class Partition:
    BOOT = const(0)
    RUNNING = const(1)
    TYPE_APP = const(0)
    TYPE_DATA = const(1)

    def __init__(self, id, block_size=_BLOCK):
        if id == Partition.BOOT:
            id = _load()["boot"]
        elif id == Partition.RUNNING:
            id = _running
        for label, sub, addr in _LAYOUT:
            if label == id:
                self.label, self.sub, self.addr = label, sub, addr
                break
        else:
            raise ValueError("partition not found")
        self.bs = block_size
        self.path = "%s/%s.bin" % (_DIR, self.label)

    def __repr__(self):
        return "<Partition type=0, subtype=%d, address=%d, size=%d, label=%s, encrypted=0>" % (
            self.sub, self.addr, _APP_SIZE, self.label)

    @staticmethod
    def find(type=TYPE_APP, subtype=0xFF, label=None):
        if type != Partition.TYPE_APP:
            return []
        return [Partition(lb) for lb, sub, _ in _LAYOUT
                if (subtype == 0xFF or subtype == sub) and (label is None or label == lb)]

    def info(self):
        return (Partition.TYPE_APP, self.sub, self.addr, _APP_SIZE, self.label, False)

    def _file(self):
        _mkdir()
        try:
            return open(self.path, "r+b")
        except OSError:
            f = open(self.path, "w+b")
            return f

    def _check(self, pos, n):
        if pos < 0 or pos + n > _APP_SIZE:
            raise OSError(22)  # EINVAL, as the port reports an out-of-range access

    def readblocks(self, block_num, buf, offset=0):
        pos = block_num * self.bs + offset
        self._check(pos, len(buf))
        try:
            with open(self.path, "rb") as f:
                f.seek(pos)
                n = f.readinto(buf) or 0
        except OSError:
            n = 0
        for i in range(n, len(buf)):
            buf[i] = 0xFF  # never written: erased flash
        return True

    def writeblocks(self, block_num, buf, offset=None):
        pos = block_num * self.bs + (offset or 0)
        self._check(pos, len(buf))
        with self._file() as f:
            if offset is None:
                # whole-block write: the port erases the blocks first
                f.seek(block_num * self.bs)
                for _ in range((len(buf) + self.bs - 1) // self.bs):
                    f.write(_erased(self.bs))
            f.seek(pos)
            f.write(buf)
        return True

    def ioctl(self, op, arg=None):
        if op == 4:
            return _APP_SIZE // self.bs
        if op == 5:
            return self.bs
        if op == 6:
            self.writeblocks(arg, _erased(self.bs), 0)
            return 0
        return 0

    def set_boot(self):
        # esp_ota_set_boot_partition() refuses an image without the 0xE9 header byte
        head = bytearray(1)
        self.readblocks(0, head)
        if head[0] != 0xE9:
            raise OSError(-5379)  # ESP_ERR_OTA_VALIDATE_FAILED
        d = _load()
        if self.label != d["boot"]:
            d["previous"] = _running
        d["boot"] = self.label
        d["state"] = "new"
        _save(d)

    def get_next_update(self):
        return Partition("ota_1" if self.label == "ota_0" else "ota_0")

    @staticmethod
    def mark_app_valid_cancel_rollback():
        d = _load()
        if d.get("state") == "pending_verify" and d["boot"] == _running:
            d["state"] = "valid"
            _save(d)
