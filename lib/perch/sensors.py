# Sensor drivers. Each reads through perch.hw only. read() returns (field, value) pairs whose
# Python types never change (float() or int()), since InfluxDB rejects a field that changes
# type, or None when there is no new reading this round. perch.telesetup makes them from
# telemetry.sensors.

import math
import time

from perch import hw


class SensorError(Exception):
    pass


class Driver:
    """mcu: the chip's die temperature (rough); adc: a voltage; dht22; sim: no hardware, a
    counter `seq` (readings since boot, so a subscriber can check order and loss) and a
    slow sine, for demos and end-to-end tests."""

    def __init__(self, name, pin=None):
        self.name = name
        self.measurement = "environment" if name == "dht22" else name
        self.tags = (("pin", str(pin)),) if name == "adc" else ()
        self.n = 0  # sim: readings so far; dht22: ticks of the last read
        self.dev = hw.adc(pin) if name == "adc" else hw.dht22(pin) if name == "dht22" else None

    async def read(self):
        name = self.name
        d = self.dev
        if name == "mcu":
            return (("temperature", float(hw.mcu_temperature())),)
        if name == "adc":
            return (("voltage", d.read_uv() / 1000000), ("raw", d.read_u16()))  # type: ignore
        if name == "sim":
            self.n += 1
            return (("seq", self.n), ("value", 20.0 + 5.0 * math.sin(time.ticks_ms() / 60000)))
        # dht22: it answers at most every 2 s, a faster poll gets a checksum error; with a
        # shorter interval it skips rounds instead of delaying the other sensors
        if self.n and time.ticks_diff(time.ticks_ms(), self.n) < 2000:
            return None
        self.n = time.ticks_ms() or 1
        d.measure()  # type: ignore  # bit-banged: about 5 ms with interrupts off
        t = d.temperature()  # type: ignore
        h = d.humidity()  # type: ignore
        if not (-40 <= t <= 80 and 0 <= h <= 100):
            raise SensorError("dht22 out of range: %r C %r %%" % (t, h))
        return (("temperature", float(t)), ("humidity", float(h)))
