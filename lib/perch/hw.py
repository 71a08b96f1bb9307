# The hardware boundary: with perch.hw_rare, the only modules of perch that import network,
# machine and esp32.
# The virtual board provides host modules with the same names and APIs.

import esp32
import machine
import network

from perch.config import lazy

# network's STAT_*, AP_IF and AUTH_* constants are const()s of the modules that use them
# (wificonnect, wifiradio): fixed values of the ESP32 port (Final in its stubs), folded into the
# code instead of a slot each in this module for the board's life.
STA_IF = network.STA_IF


# Plain aliases where a wrapper would add nothing but its own RAM.
reset = machine.reset
# Cancels the bootloader's pending-verify rollback of a new firmware image (no-op otherwise)
mark_app_valid = esp32.Partition.mark_app_valid_cancel_rollback


def __getattr__(name):
    # device_id, set_hostname, watchdog, dns_server, adc, i2c, dht22, set_rtc, ota_partitions,
    # partition_label: perch.hw_rare's, loaded per call (they are called once at boot or at
    # setup, on connect, or for an OTA)
    return getattr(lazy("hw_rare"), name)


def wlan(interface):
    # a function, not an alias: callers get an untyped interface, as the port's stubs vary
    return network.WLAN(interface)


def mcu_temperature():
    # The original ESP32 only has raw_temperature(), in degrees Fahrenheit.
    return (esp32.raw_temperature() - 32) / 1.8
