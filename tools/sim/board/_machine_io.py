# Host models of the ESP32 port's machine.Pin, ADC, I2C and SoftI2C, and the rest of `machine`
# that a booted board does not use, for the virtual board; `machine` loads this module the
# first time one of them is asked for.
import time

import machine
from micropython import const

EXT0_WAKE = const(2)
EXT1_WAKE = const(3)
PIN_WAKE = const(2)
TIMER_WAKE = const(4)
TOUCHPAD_WAKE = const(5)
ULP_WAKE = const(6)
SLEEP = const(2)
DEEPSLEEP = const(4)
_ENODEV = const(19)
_freq = 160000000


def freq(hz=None):
    global _freq
    if hz is None:
        return _freq
    if hz not in (20000000, 40000000, 80000000, 160000000, 240000000):
        raise ValueError("frequency must be 20MHz, 40MHz, 80Mhz, 160MHz or 240MHz")
    _freq = hz


def idle():
    time.sleep_ms(1)


def lightsleep(time_ms=None):
    time.sleep_ms(time_ms or 0)


def disable_irq():
    return 0


def enable_irq(state):
    pass


# GPIOs of the ESP32 (6-11 drive the flash but exist); 34-39 have no output driver
_GPIOS = set(range(0, 20)) | {21, 22, 23, 25, 26, 27} | set(range(32, 40))
_pins = {}  # id -> [mode, pull, level]: one state per GPIO, shared by all Pin objects


def _pin_id(p):
    return p._id if isinstance(p, Pin) else p


class Pin:
    IN = const(1)
    OUT = const(3)
    OPEN_DRAIN = const(7)
    PULL_DOWN = const(1)
    PULL_UP = const(2)
    IRQ_RISING = const(1)
    IRQ_FALLING = const(2)
    WAKE_LOW = const(4)
    WAKE_HIGH = const(5)
    DRIVE_0 = const(0)
    DRIVE_1 = const(1)
    DRIVE_2 = const(2)
    DRIVE_3 = const(3)

    def __init__(self, id, mode=-1, pull=-1, *, value=None, drive=None, hold=None):
        if id not in _GPIOS:
            raise ValueError("invalid pin")
        self._id = id
        if id not in _pins:
            _pins[id] = [Pin.IN, None, 0]
        self.init(mode, pull, value=value)

    def init(self, mode=-1, pull=-1, *, value=None, drive=None, hold=None):
        st = _pins[self._id]
        if mode != -1 and mode is not None:
            if mode not in (Pin.IN, Pin.OUT, Pin.OPEN_DRAIN):
                raise ValueError("invalid pin mode")
            if mode != Pin.IN and self._id >= 34:
                raise ValueError("pin can only be input")
            st[0] = mode
        if pull != -1:
            st[1] = pull
        if value is not None:
            st[2] = 1 if value else 0

    def value(self, x=None):
        st = _pins[self._id]
        if x is not None:
            st[2] = 1 if x else 0
            return None
        if st[0] != Pin.IN:
            return st[2]
        level = machine._world("sensors", {}).get("pins", {}).get(str(self._id))
        if level is not None:
            return 1 if level else 0
        return 1 if st[1] == Pin.PULL_UP else 0

    def __call__(self, x=None):
        return self.value(x)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def mode(self, mode=None):
        if mode is None:
            return _pins[self._id][0]
        self.init(mode)

    def pull(self, pull=None):
        if pull is None:
            return _pins[self._id][1]
        self.init(-1, pull)

    def __repr__(self):
        return "Pin(%d)" % self._id


_sens = []


def _sensors():
    """The sensor models module when present (it is optional on the board), else None."""
    if not _sens:
        try:
            import _sensors as m
        except ImportError:
            m = None
        _sens.append(m)
    return _sens[0]


_ADC_PINS = (0, 2, 4, 12, 13, 14, 15, 25, 26, 27, 32, 33, 34, 35, 36, 37, 38, 39)
_ADC_FULL_UV = (1100000, 1500000, 2200000, 3900000)  # full scale per attenuation


class ADC:
    ATTN_0DB = const(0)
    ATTN_2_5DB = const(1)
    ATTN_6DB = const(2)
    ATTN_11DB = const(3)
    WIDTH_9BIT = const(9)
    WIDTH_10BIT = const(10)
    WIDTH_11BIT = const(11)
    WIDTH_12BIT = const(12)

    def __init__(self, id, *, atten=0):
        pin = _pin_id(id)
        if pin not in _ADC_PINS:
            raise ValueError("invalid pin")
        self._pin = pin
        self._bits = 12
        self.atten(atten)

    def init(self, *, atten=None):
        if atten is not None:
            self.atten(atten)

    def atten(self, atten):
        if not 0 <= atten <= 3:
            raise ValueError("invalid attenuation")
        self._atten = atten

    def width(self, bits):
        if not 9 <= bits <= 12:
            raise ValueError("invalid bit-width")
        self._bits = bits

    def _raw(self):
        # a 12-bit count (0-4095), the ESP32 ADC's native resolution
        m = _sensors()
        if m is not None and hasattr(m, "adc_read"):
            v = m.adc_read(self._pin)
        else:
            v = machine._world("sensors", {}).get("adc", {}).get(str(self._pin), 0)
        try:
            v = int(v)
        except (TypeError, ValueError):
            v = 0
        return min(max(v, 0), 4095)

    def read(self):
        return self._raw() >> (12 - self._bits)

    def read_u16(self):
        raw = self._raw()
        return (raw << 4) | (raw >> 8)

    def read_uv(self):
        return self._raw() * _ADC_FULL_UV[self._atten] // 4095

    def deinit(self):
        pass


def _nack():
    return OSError(_ENODEV)


class I2C:
    """A bus whose devices are the models of _sensors.py; without it the bus is empty."""

    def __init__(self, id=0, *, scl=None, sda=None, freq=400000, timeout=50000):
        if id not in (0, 1):
            raise ValueError("I2C(%s) doesn't exist" % id)
        self._ptr = {}  # addr -> register pointer set by a plain write

    def init(self, *, scl=None, sda=None, freq=400000, timeout=50000):
        pass

    def deinit(self):
        pass

    def scan(self):
        m = _sensors()
        if m is None or not hasattr(m, "i2c_scan"):
            return []
        return list(m.i2c_scan())

    def _dev(self, addr):
        m = _sensors()
        if m is None or addr not in self.scan():
            raise _nack()
        return m

    def readfrom_mem(self, addr, memaddr, nbytes, *, addrsize=8):
        return bytes(self._dev(addr).i2c_readfrom_mem(addr, memaddr, nbytes))

    def readfrom_mem_into(self, addr, memaddr, buf, *, addrsize=8):
        data = self.readfrom_mem(addr, memaddr, len(buf))
        buf[: len(data)] = data

    def writeto_mem(self, addr, memaddr, buf, *, addrsize=8):
        self._dev(addr).i2c_writeto_mem(addr, memaddr, bytes(buf))

    def writeto(self, addr, buf, stop=True):
        # register devices: the first byte sets the register pointer, the rest is data
        m = self._dev(addr)
        buf = bytes(buf)
        if buf:
            self._ptr[addr] = buf[0]
            if len(buf) > 1:
                m.i2c_writeto_mem(addr, buf[0], buf[1:])
        return len(buf)

    def readfrom(self, addr, nbytes, stop=True):
        m = self._dev(addr)
        return bytes(m.i2c_readfrom_mem(addr, self._ptr.get(addr, 0), nbytes))

    def readfrom_into(self, addr, buf, stop=True):
        data = self.readfrom(addr, len(buf))
        buf[: len(data)] = data


class SoftI2C(I2C):
    def __init__(self, scl, sda, *, freq=400000, timeout=50000):
        super().__init__(0)
