# Host implementation of the ESP32 port's `esp32` module for the virtual board:
# raw_temperature() from the world file, and Partition, the OTA flash model of _flash.py
# (under .flash/ in the board root). On the chip this is C and costs no heap: Partition is
# loaded on each use and freed once no partition object is left (machine._lazy).
import machine

# the simulated bootloader, once per boot: the app partition this boot runs
_running = machine._lazy("_flash", "_boot")()


def raw_temperature():
    # the world gives °C (sensors.mcu_temperature); the ESP32 reports °F
    return int(machine._get("sensors", {}).get("mcu_temperature", 45.0) * 1.8 + 32)


def __getattr__(name):
    if name != "Partition":
        raise AttributeError(name)
    return machine._lazy("_flash", name)
