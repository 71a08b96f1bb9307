# Sensor drivers. Each reads through perch.hw only, and returns a dict of fields whose
# types never change (InfluxDB rejects a field that changes type).
#
# telemetry.sensors lists them: "mcu", "sim", or objects such as
#   {"driver": "adc", "pin": 34}, {"driver": "dht22", "pin": 4},
#   {"driver": "bme280", "scl": 22, "sda": 21, "bus": 0, "addr": 118}

import asyncio
import math
import struct
import time

from micropython import const

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


_BME_ID = const(0xD0)
_BME_CTRL_HUM = const(0xF2)
_BME_STATUS = const(0xF3)
_BME_CTRL_MEAS = const(0xF4)
_BME_DATA = const(0xF7)


class BME280(Driver):
    """Bosch BME280 over I2C, with the datasheet's integer compensation formulas."""

    name = "bme280"
    measurement = "environment"
    types = {"temperature": FLOAT, "humidity": FLOAT, "pressure": FLOAT}

    def __init__(self, bus=0, scl=22, sda=21, addr=0x76):
        self.addr = addr
        self._i2c = hw.i2c(bus, scl, sda)
        self._cal = None

    def _setup(self):
        i2c = self._i2c
        try:
            chip = i2c.readfrom_mem(self.addr, _BME_ID, 1)[0]
        except OSError:
            raise SensorError("bme280: no answer at I2C address 0x%02x" % self.addr)
        if chip != 0x60:
            raise SensorError("bme280: chip id 0x%02x at 0x%02x is not a BME280"
                              % (chip, self.addr))
        a = i2c.readfrom_mem(self.addr, 0x88, 26)
        b = i2c.readfrom_mem(self.addr, 0xE1, 7)
        t1, t2, t3, p1, p2, p3, p4, p5, p6, p7, p8, p9 = struct.unpack("<HhhHhhhhhhhh", a[:24])
        h1 = a[25]
        h2, h3 = struct.unpack("<hB", b[:3])
        h4 = b[3] << 4 | (b[4] & 0x0F)
        h5 = b[5] << 4 | b[4] >> 4
        if h4 & 0x800:
            h4 -= 0x1000  # 12-bit two's complement
        if h5 & 0x800:
            h5 -= 0x1000
        h6 = b[6] - 256 if b[6] > 127 else b[6]
        self._cal = (t1, t2, t3, p1, p2, p3, p4, p5, p6, p7, p8, p9, h1, h2, h3, h4, h5, h6)

    async def read(self):
        if self._cal is None:
            self._setup()
        i2c = self._i2c
        try:
            i2c.writeto_mem(self.addr, _BME_CTRL_HUM, b"\x01")  # humidity x1
            i2c.writeto_mem(self.addr, _BME_CTRL_MEAS, b"\x25")  # T x1, P x1, forced
            for _ in range(10):
                await asyncio.sleep_ms(10)  # a forced x1 conversion takes ~8 ms
                if not i2c.readfrom_mem(self.addr, _BME_STATUS, 1)[0] & 0x08:
                    break
            d = i2c.readfrom_mem(self.addr, _BME_DATA, 8)
        except OSError as e:
            self._cal = None  # re-probe next time: it may have been unplugged
            raise SensorError("bme280: I2C error %s" % e)
        adc_p = d[0] << 12 | d[1] << 4 | d[2] >> 4
        adc_t = d[3] << 12 | d[4] << 4 | d[5] >> 4
        adc_h = d[6] << 8 | d[7]
        if adc_t == 0x80000:
            raise SensorError("bme280: no temperature sample (skipped measurement)")
        return compensate(self._cal, adc_t, adc_p, adc_h)


def _div(a, b):
    # C integer division truncates toward zero; Python's // floors
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def compensate(cal, adc_t, adc_p, adc_h):
    """BME280 datasheet §4.2.3: int32 temperature and humidity, int64 pressure."""
    t1, t2, t3, p1, p2, p3, p4, p5, p6, p7, p8, p9, h1, h2, h3, h4, h5, h6 = cal
    v1 = (((adc_t >> 3) - (t1 << 1)) * t2) >> 11
    v2 = (((((adc_t >> 4) - t1) * ((adc_t >> 4) - t1)) >> 12) * t3) >> 14
    t_fine = v1 + v2
    temp = (t_fine * 5 + 128) >> 8  # 0.01 degC

    v1 = t_fine - 128000
    v2 = v1 * v1 * p6
    v2 = v2 + ((v1 * p5) << 17)
    v2 = v2 + (p4 << 35)
    v1 = ((v1 * v1 * p3) >> 8) + ((v1 * p2) << 12)
    v1 = (((1 << 47) + v1) * p1) >> 33
    press = None
    if v1:
        p = 1048576 - adc_p
        p = _div(((p << 31) - v2) * 3125, v1)
        v1 = (p9 * (p >> 13) * (p >> 13)) >> 25
        v2 = (p8 * p) >> 19
        press = ((p + v1 + v2) >> 8) + (p7 << 4)  # Pa in Q24.8

    x = t_fine - 76800
    x = ((((adc_h << 14) - (h4 << 20) - (h5 * x)) + 16384) >> 15) * (
        ((((((x * h6) >> 10) * (((x * h3) >> 11) + 32768)) >> 10) + 2097152) * h2 + 8192) >> 14)
    x = x - (((((x >> 15) * (x >> 15)) >> 7) * h1) >> 4)
    x = 0 if x < 0 else 419430400 if x > 419430400 else x
    hum = x >> 12  # %RH in Q22.10

    out = {"temperature": temp / 100, "humidity": hum / 1024}
    if press is not None:
        out["pressure"] = press / 256 / 100  # hPa
    return out


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
    return BME280(**kw)
