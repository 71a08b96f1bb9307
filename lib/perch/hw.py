# The hardware boundary: with perch.hw_rare, the only modules of perch that import network,
# machine and esp32.
# The virtual board provides host modules with the same names and APIs.

import esp32
import machine
import network

from perch.config import lazy

STA_IF = network.STA_IF
AP_IF = network.AP_IF
STAT_GOT_IP = network.STAT_GOT_IP
STAT_WRONG_PASSWORD = network.STAT_WRONG_PASSWORD
STAT_NO_AP_FOUND = network.STAT_NO_AP_FOUND
STAT_HANDSHAKE_TIMEOUT = network.STAT_HANDSHAKE_TIMEOUT
STAT_ASSOC_FAIL = network.STAT_ASSOC_FAIL
STAT_BEACON_TIMEOUT = network.STAT_BEACON_TIMEOUT
AUTH_OPEN = network.AUTH_OPEN
AUTH_WPA2_PSK = network.AUTH_WPA2_PSK


# Plain aliases where a wrapper would add nothing but its own RAM.
set_hostname = network.hostname  # DHCP and mDNS name: the board answers as <name>.local
reset = machine.reset
# Cancels the bootloader's pending-verify rollback of a new firmware image (no-op otherwise)
mark_app_valid = esp32.Partition.mark_app_valid_cancel_rollback


def __getattr__(name):
    # device_id, watchdog, dns_server, adc, i2c, dht22, set_rtc, ota_partitions,
    # partition_label: perch.hw_rare's, loaded per call (they are called once at boot or at
    # setup, on connect, or for an OTA)
    return getattr(lazy("hw_rare"), name)


def wlan(interface):
    # a function, not an alias: callers get an untyped interface, as the port's stubs vary
    return network.WLAN(interface)


def mcu_temperature():
    # The original ESP32 only has raw_temperature(), in degrees Fahrenheit.
    return (esp32.raw_temperature() - 32) / 1.8
