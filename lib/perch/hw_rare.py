# The rarely called side of perch.hw (see there), loaded per use through hw.__getattr__.

import esp32
import machine
import network


def device_id():
    # The last three bytes of the MAC, as every ESP32 product names itself.
    return "perch-" + "".join("%02x" % b for b in machine.unique_id()[-3:])


def set_hostname(name):
    # DHCP and mDNS name: the board answers as <name>.local. A call, not an alias of
    # network.hostname: holding that function would keep the virtual board's network code
    # for its rare calls loaded.
    network.hostname(name)


def watchdog(timeout_ms):
    return machine.WDT(timeout=timeout_ms)


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
