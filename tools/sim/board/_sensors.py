# World-driven sensor models of the virtual board. machine.ADC, machine.I2C, dht.DHT22 and
# esp32's temperature read from here, so perch.sensors runs its real drivers unchanged.
#
# The world file's "sensors" object (all optional):
#   {"temperature_c": 21.5, "humidity_pct": 45.0, "pressure_hpa": 1013.25,  (or without
#    the unit suffix: "temperature", "humidity", "pressure")
#    "mcu_temperature": 45.0,
#    "adc": {"34": 2048},                   12-bit counts per pin
#    "bme280": {"addr": 118, "present": true, "temperature_c": ...},
#    "dht22": {"present": true, "humidity_pct": ...},
#    "fail": ["dht22", "bme280", "mcu"]}    these reads fail, as a loose wire would
import struct

import machine

_DEFAULTS = {"temperature_c": 21.5, "humidity_pct": 45.0, "pressure_hpa": 1013.25,
             "mcu_temperature": 45.0}


def _s():
    return machine._world("sensors", {})


def _fails(name):
    f = _s().get("fail")
    return isinstance(f, list) and name in f


# short names are accepted too: {"temperature": 21.5, "humidity": 48, "pressure": 1013}
_ALIASES = {"temperature_c": "temperature", "humidity_pct": "humidity",
            "pressure_hpa": "pressure"}


def value(key, device=None):
    """A world value as float, a device's own override first, then the shared one."""
    s = _s()
    alias = _ALIASES.get(key)
    for src in (s.get(device) if device else None, s):
        if isinstance(src, dict):
            for k in (key, alias):
                v = src.get(k) if k else None
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    return float(v)
    return _DEFAULTS[key]


def present(device):
    d = _s().get(device)
    return not (isinstance(d, dict) and d.get("present") is False)


# -- ADC ------------------------------------------------------------------------------------
def adc_read(pin):
    v = _s().get("adc", {})
    v = v.get(str(pin), 0) if isinstance(v, dict) else 0
    return v if isinstance(v, int) else 0


# -- internal temperature --------------------------------------------------------------------
def mcu_temperature():
    if _fails("mcu"):
        raise OSError(5)  # EIO
    return value("mcu_temperature")


def raw_temperature():
    # what esp32.raw_temperature() returns on the original ESP32: whole degrees Fahrenheit
    return int(mcu_temperature() * 1.8 + 32 + 0.5)


# -- BME280 register model -------------------------------------------------------------------
# Calibration words of a real part (datasheet-typical values). The model inverts the
# datasheet's floating-point compensation to find the raw ADC values that read back as the
# world's temperature, pressure and humidity; the device driver uses the integer formulas,
# so the two implementations check each other.
_T = (27504, 26435, -1000)
_P = (36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000)
_H = (75, 362, 0, 313, 50, 30)


def _calib():
    a = bytearray(struct.pack("<HhhHhhhhhhhh", *(_T + _P)))
    a += bytes((0, _H[0]))  # 0xA0 unused, 0xA1 dig_H1
    h4, h5 = _H[3], _H[4]
    b = struct.pack("<hB", _H[1], _H[2]) + bytes(
        ((h4 >> 4) & 0xFF, (h4 & 0x0F) | ((h5 & 0x0F) << 4), (h5 >> 4) & 0xFF, _H[5] & 0xFF))
    return bytes(a), b


def _t_float(adc_t):
    t1, t2, t3 = _T
    v1 = (adc_t / 16384.0 - t1 / 1024.0) * t2
    v2 = (adc_t / 131072.0 - t1 / 8192.0) * (adc_t / 131072.0 - t1 / 8192.0) * t3
    return (v1 + v2) / 5120.0, int(v1 + v2)


def _p_float(adc_p, t_fine):
    p1, p2, p3, p4, p5, p6, p7, p8, p9 = _P
    v1 = t_fine / 2.0 - 64000.0
    v2 = v1 * v1 * p6 / 32768.0
    v2 = v2 + v1 * p5 * 2.0
    v2 = v2 / 4.0 + p4 * 65536.0
    v1 = (p3 * v1 * v1 / 524288.0 + p2 * v1) / 524288.0
    v1 = (1.0 + v1 / 32768.0) * p1
    p = 1048576.0 - adc_p
    p = (p - v2 / 4096.0) * 6250.0 / v1
    v1 = p9 * p * p / 2147483648.0
    v2 = p * p8 / 32768.0
    return p + (v1 + v2 + p7) / 16.0


def _h_float(adc_h, t_fine):
    h1, h2, h3, h4, h5, h6 = _H
    x = t_fine - 76800.0
    x = (adc_h - (h4 * 64.0 + h5 / 16384.0 * x)) * (
        h2 / 65536.0 * (1.0 + h6 / 67108864.0 * x * (1.0 + h3 / 67108864.0 * x)))
    x = x * (1.0 - h1 * x / 524288.0)
    return min(max(x, 0.0), 100.0)


def _solve(fn, want, lo, hi, rising=True):
    # the compensation is monotonic in the raw value: bisect for it
    while lo < hi:
        mid = (lo + hi) // 2
        got = fn(mid)
        if (got < want) == rising:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _bme_raw():
    t = value("temperature_c", "bme280")
    adc_t = _solve(lambda r: _t_float(r)[0], t, 0, (1 << 20) - 1)
    t_fine = _t_float(adc_t)[1]
    pa = value("pressure_hpa", "bme280") * 100
    adc_p = _solve(lambda r: _p_float(r, t_fine), pa, 0, (1 << 20) - 1, rising=False)
    rh = value("humidity_pct", "bme280")
    adc_h = _solve(lambda r: _h_float(r, t_fine), rh, 0, 65535)
    return bytes((adc_p >> 12, (adc_p >> 4) & 0xFF, (adc_p & 0x0F) << 4,
                  adc_t >> 12, (adc_t >> 4) & 0xFF, (adc_t & 0x0F) << 4,
                  adc_h >> 8, adc_h & 0xFF))


class _BME280:
    def __init__(self):
        self.regs = bytearray(256)
        a, b = _calib()
        self.regs[0x88:0x88 + len(a)] = a
        self.regs[0xE1:0xE1 + len(b)] = b
        self.regs[0xD0] = 0x60
        # until a measurement runs, the data registers hold the "skipped" pattern
        self.regs[0xF7:0xFF] = b"\x80\x00\x00\x80\x00\x00\x80\x00"

    def write(self, reg, data):
        for i, v in enumerate(data):
            r = reg + i
            if r == 0xE0 and v == 0xB6:  # soft reset
                self.__init__()
                return
            if r in (0xF2, 0xF4, 0xF5):
                self.regs[r] = v
            if r == 0xF4 and v & 0x03:
                # forced or normal mode: a conversion (instant in the model)
                self.regs[0xF7:0xFF] = _bme_raw()
                if v & 0x03 != 0x03:
                    self.regs[0xF4] = v & 0xFC  # forced mode falls back to sleep

    def read(self, reg, n):
        if self.regs[0xF4] & 0x03 == 0x03:
            self.regs[0xF7:0xFF] = _bme_raw()  # normal mode keeps converting
        return bytes(self.regs[reg:reg + n])


_devices = {}


def _bme_addr():
    d = _s().get("bme280")
    if isinstance(d, dict) and d.get("addr") in (0x76, 0x77):
        return d["addr"]
    return 0x76


def i2c_scan():
    if not present("bme280") or _fails("bme280"):
        return []
    return [_bme_addr()]


def _dev(addr):
    if addr not in i2c_scan():
        raise OSError(19)  # ENODEV: no ACK
    d = _devices.get(addr)
    if d is None:
        d = _devices[addr] = _BME280()
    return d


def i2c_readfrom_mem(addr, reg, n):
    return _dev(addr).read(reg, n)


def i2c_writeto_mem(addr, reg, buf):
    _dev(addr).write(reg, bytes(buf))


# -- DHT22 ---------------------------------------------------------------------------------
def dht22_read():
    """(temperature C, humidity %) at the DHT22's 0.1 resolution; OSError when it fails."""
    if not present("dht22") or _fails("dht22"):
        raise OSError(110)  # ETIMEDOUT: the sensor never pulled the line low
    t = value("temperature_c", "dht22")
    h = value("humidity_pct", "dht22")
    return round(t * 10) / 10, round(h * 10) / 10
