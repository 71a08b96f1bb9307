# Bosch BME280 (temperature, humidity, pressure) over I2C, read in forced mode, with the
# datasheet's integer compensation formulas (exact on the ESP32's single-precision floats).

import asyncio
import struct

from micropython import const

from perch import hw
from perch.sensors import SensorError

_BME_ID = const(0xD0)
_BME_CTRL_HUM = const(0xF2)
_BME_STATUS = const(0xF3)
_BME_CTRL_MEAS = const(0xF4)
_BME_DATA = const(0xF7)


class BME280:
    """Bosch BME280 over I2C, with the datasheet's integer compensation formulas."""

    name = "bme280"
    measurement = "environment"
    tags = ()

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

    # pressure None (left out of the line) when the calibration cannot give one
    return (("temperature", temp / 100), ("humidity", hum / 1024),
            ("pressure", None if press is None else press / 256 / 100))  # hPa


