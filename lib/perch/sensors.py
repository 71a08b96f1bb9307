# Sensor drivers. Each reads through perch.hw only, and returns a dict of fields whose
# types never change (InfluxDB rejects a field that changes type).
#
# telemetry.sensors lists them: "mcu", "sim", or objects such as
#   {"driver": "adc", "pin": 34}, {"driver": "dht22", "pin": 4},
#   {"driver": "bme280", "scl": 22, "sda": 21, "bus": 0, "addr": 118}

import math
import time

from perch import hw
from perch.lineproto import FLOAT, INT


class SensorError(Exception):
    pass


class Driver:
    """read() returns {field: value}, or None when there is no new reading this round."""

    name = "?"
    measurement = "?"
    types: dict = {}
    tags: tuple = ()

    async def read(self):
        raise NotImplementedError


class MCU(Driver):
    """The chip's internal temperature sensor (a rough die temperature)."""

    name = "mcu"
    measurement = "mcu"
    types = {"temperature": FLOAT}

    async def read(self):
        return {"temperature": float(hw.mcu_temperature())}


class ADC(Driver):
    name = "adc"
    measurement = "adc"
    types = {"voltage": FLOAT, "raw": INT}

    def __init__(self, pin):
        self.pin = _pin(pin, "adc")
        self.tags = (("pin", str(self.pin)),)
        self._adc = hw.adc(self.pin)

    async def read(self):
        return {"voltage": self._adc.read_uv() / 1000000, "raw": self._adc.read_u16()}


class DHT22(Driver):
    name = "dht22"
    measurement = "environment"
    types = {"temperature": FLOAT, "humidity": FLOAT}

    def __init__(self, pin):
        self.pin = _pin(pin, "dht22")
        self._dev = hw.dht22(self.pin)
        self._last = 0

    async def read(self):
        # the DHT22 answers at most every 2 s, a faster poll gets a checksum error: with a
        # shorter interval this sensor skips rounds instead of delaying the others
        if self._last and time.ticks_diff(time.ticks_ms(), self._last) < 2000:
            return None
        self._last = time.ticks_ms()
        self._dev.measure()  # bit-banged: about 5 ms with interrupts off
        t = self._dev.temperature()
        h = self._dev.humidity()
        if not (-40 <= t <= 80 and 0 <= h <= 100):
            raise SensorError("dht22 out of range: %r C %r %%" % (t, h))
        return {"temperature": float(t), "humidity": float(h)}


class Sim(Driver):
    """No hardware: a counter and a slow sine, for demos and end-to-end tests.

    `seq` counts readings since boot, so a subscriber can check order and loss.
    """

    name = "sim"
    measurement = "sim"
    types = {"seq": INT, "value": FLOAT}

    def __init__(self):
        self.seq = 0

    async def read(self):
        self.seq += 1
        t = time.ticks_ms() / 1000
        return {"seq": self.seq, "value": 20.0 + 5.0 * math.sin(t / 60)}


def _pin(v, driver):
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 48:
        raise SensorError("%s: pin must be a GPIO number, got %r" % (driver, v))
    return v


_ARGS = {"adc": ("pin",), "dht22": ("pin",), "bme280": ("bus", "scl", "sda", "addr"),
         "mcu": (), "sim": ()}


def make(spec):
    """A driver from one telemetry.sensors entry; SensorError says what is wrong with it."""
    if isinstance(spec, str):
        spec = {"driver": spec}
    if not isinstance(spec, dict):
        raise SensorError("sensor entry must be a name or an object, got %r" % (spec,))
    name = spec.get("driver")
    if name not in _ARGS:
        raise SensorError("unknown sensor driver %r (known: %s)"
                          % (name, ", ".join(sorted(_ARGS))))
    kw = {}
    for k, v in spec.items():
        if k == "driver":
            continue
        if k not in _ARGS[name]:
            raise SensorError("%s: unknown option %r" % (name, k))
        if not isinstance(v, int) or isinstance(v, bool):
            raise SensorError("%s: %s must be an integer" % (name, k))
        kw[k] = v
    if name == "mcu":
        return MCU()
    if name == "sim":
        return Sim()
    if name == "adc":
        if "pin" not in kw:
            raise SensorError("adc: needs a pin")
        return ADC(**kw)
    if name == "dht22":
        if "pin" not in kw:
            raise SensorError("dht22: needs a pin")
        return DHT22(**kw)
    from perch import bme280  # its compensation code is only loaded when configured

    return bme280.BME280(**kw)
