# Sensor drivers. Each reads through perch.hw only. read() returns (field, value) pairs whose
# Python types never change (float() or int()), since InfluxDB rejects a field that changes
# type, or None when there is no new reading this round.
#
# telemetry.sensors lists them: "mcu", "sim", or objects such as
#   {"driver": "adc", "pin": 34}, {"driver": "dht22", "pin": 4},
#   {"driver": "bme280", "scl": 22, "sda": 21, "bus": 0, "addr": 118}

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


def make(spec):
    """A driver from one telemetry.sensors entry; SensorError says what is wrong with it."""
    if isinstance(spec, str):
        spec = {"driver": spec}
    if not isinstance(spec, dict):
        raise SensorError("sensor entry must be a name or an object, got %r" % (spec,))
    name = spec.get("driver")
    opts = (("pin",) if name in ("adc", "dht22") else ("bus", "scl", "sda", "addr")
            if name == "bme280" else () if name in ("mcu", "sim") else None)
    if opts is None:
        raise SensorError("unknown sensor driver %r (known: adc, bme280, dht22, mcu, sim)"
                          % (name,))
    kw = {}
    for k, v in spec.items():
        if k == "driver":
            continue
        if k not in opts:
            raise SensorError("%s: unknown option %r" % (name, k))
        if not isinstance(v, int) or isinstance(v, bool):
            raise SensorError("%s: %s must be an integer" % (name, k))
        kw[k] = v
    if name == "bme280":
        from perch import bme280  # its compensation code is only loaded when configured

        return bme280.BME280(**kw)
    pin = kw.get("pin", 0)
    if opts and not (kw and 0 <= pin <= 48):
        raise SensorError("%s: needs a pin, a GPIO number" % name)
    return Driver(name, pin)
