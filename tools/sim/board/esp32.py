# Host implementation of the ESP32 port's `esp32` module for the virtual board:
# raw_temperature() from the world file, and Partition, the OTA flash model of _flash.py
# (under .flash/ in the board root). On the chip this is C and costs no heap: the model is
# loaded on each use and freed once no partition object is left (machine._lazy).
import os

import machine
from micropython import const


def _otadata():
    try:
        return os.stat(".flash/otadata.json")
    except OSError:
        return None


# The simulated bootloader, once per boot: the app partition this boot runs. Without
# otadata (a board that never changed its boot partition) it has nothing to do.
_running = machine._lazy("_flash", "_boot")() if _otadata() else "ota_0"
os.putenv("PERCH_SIM_BOOTED", _running)  # a re-import of this module in this process: no boot


def raw_temperature():
    # the world gives °C (sensors.mcu_temperature); the ESP32 reports °F
    return int(machine._world("sensors", {}).get("mcu_temperature", 45.0) * 1.8 + 32)


class Partition:
    # Stands in for _flash.Partition, the model: Partition() and find() hand out its objects,
    # which keep it loaded while they live. This class stays small, as perch holds on to it
    # (and to mark_app_valid_cancel_rollback) for the board's life.
    BOOT = const(0)
    RUNNING = const(1)
    TYPE_APP = const(0)
    TYPE_DATA = const(1)

    def __new__(cls, *args, **kwargs):
        return machine._lazy("_flash", "Partition")(*args, **kwargs)

    @staticmethod
    def find(*args, **kwargs):
        return machine._lazy("_flash", "Partition").find(*args, **kwargs)

    @staticmethod
    def mark_app_valid_cancel_rollback():
        # nothing to confirm on a board that never changed its boot partition
        if _otadata():
            machine._lazy("_flash", "Partition").mark_app_valid_cancel_rollback()
