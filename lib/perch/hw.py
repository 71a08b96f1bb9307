# The hardware boundary: the only module of perch that imports network, machine and esp32.
# The virtual board provides host modules with the same names and APIs.

import esp32
import machine
import network

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


def wlan(interface):
    # a function, not an alias: callers get an untyped interface, as the port's stubs vary
    return network.WLAN(interface)


def device_id():
    # The last three bytes of the MAC, as every ESP32 product names itself.
    return "perch-" + "".join("%02x" % b for b in machine.unique_id()[-3:])


def watchdog(timeout_ms):
    return machine.WDT(timeout=timeout_ms)


def mcu_temperature():
    # The original ESP32 only has raw_temperature(), in degrees Fahrenheit.
    return (esp32.raw_temperature() - 32) / 1.8


def dns_server():
    # The station's DNS server, for lookups that must not block the loop.
    try:
        return network.ipconfig("dns")
    except (AttributeError, OSError, ValueError):
        return None


def adc(pin):
    # 11 dB attenuation: the full 0-3.3 V range of a typical sensor divider
    a = machine.ADC(machine.Pin(pin))
    a.atten(machine.ADC.ATTN_11DB)
    return a


def i2c(bus, scl, sda, freq=100000):
    return machine.I2C(bus, scl=machine.Pin(scl), sda=machine.Pin(sda), freq=freq)


def dht22(pin):
    import dht

    return dht.DHT22(machine.Pin(pin))


def set_rtc(tm):
    # tm: time.gmtime()-style tuple in the board's epoch (NTP sync)
    machine.RTC().datetime((tm[0], tm[1], tm[2], tm[6] + 1, tm[3], tm[4], tm[5], 0))


def ota_partitions():
    # (running, next update) app partitions of the OTA partition table
    # the stubs type id as str; the port also takes Partition.RUNNING (documented API)
    run = esp32.Partition(esp32.Partition.RUNNING)  # type: ignore[arg-type]
    return run, run.get_next_update()


def partition_label(p):
    return p.info()[4]
