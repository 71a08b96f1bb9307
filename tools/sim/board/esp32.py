# Host implementation of the ESP32 port's `esp32` module for the virtual board:
# raw_temperature() from the world file, and Partition, the OTA flash model of _flash.py
# (under .flash/ in the board root). On the chip this is C and costs no heap: Partition is
# loaded on each use and freed once no partition object is left (machine._lazy).
import os

import machine

# The simulated bootloader, once per boot: the app partition this boot runs. Without
# otadata (a board that never changed its boot partition) it has nothing to do.
try:
    os.stat(".flash/otadata.json")
    _running = None
except OSError:
    _running = "ota_0"
_running = _running or machine._lazy("_flash", "_boot")()
os.putenv("PERCH_SIM_BOOTED", _running)  # a re-import of this module in this process: no boot


def raw_temperature():
    # the world gives °C (sensors.mcu_temperature); the ESP32 reports °F
    return int(machine._world("sensors", {}).get("mcu_temperature", 45.0) * 1.8 + 32)


def __getattr__(name):
    if name != "Partition":
        raise AttributeError(name)
    return machine._lazy("_flash", name)
