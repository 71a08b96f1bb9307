# Host implementation of the ESP32 port's `machine` module for the virtual board.
# Resets and the watchdog are carried out by the supervisor (tools/sim/runner.py), which
# listens on UDP 127.0.0.1:$PERCH_SIM_CTL; sensors come from _sensors.py or the world file.
import os
import socket as _socket
import sys
import time

import _world
from micropython import const

# the built-in module: the supervisor link must work while the station is down
_net = getattr(_socket, "_real", _socket)

PWRON_RESET = const(1)
HARD_RESET = const(2)
WDT_RESET = const(3)
DEEPSLEEP_RESET = const(4)
SOFT_RESET = const(5)

EXT0_WAKE = const(2)
EXT1_WAKE = const(3)
PIN_WAKE = const(2)
TIMER_WAKE = const(4)
TOUCHPAD_WAKE = const(5)
ULP_WAKE = const(6)
SLEEP = const(2)
DEEPSLEEP = const(4)

_EXIT_RESET = const(75)  # the supervisor's "reboot me" exit code
_CAUSES = {
    "PWRON_RESET": PWRON_RESET,
    "HARD_RESET": HARD_RESET,
    "WDT_RESET": WDT_RESET,
    "DEEPSLEEP_RESET": DEEPSLEEP_RESET,
    "SOFT_RESET": SOFT_RESET,
}

_ctl = []  # [socket, address] once the supervisor link is opened
_freq = [160000000]


def _ctl_send(msg):
    port = os.getenv("PERCH_SIM_CTL")
    if not port:
        return  # not under the supervisor (a bare test run): nobody to reset us
    if not _ctl:
        s = _net.socket(_net.AF_INET, _net.SOCK_DGRAM)
        _ctl.append(s)
        _ctl.append(_net.getaddrinfo("127.0.0.1", int(port))[0][-1])
    _ctl[0].sendto(msg, _ctl[1])


def reset():
    # The supervisor is told first, so it still reboots us if device code swallows the
    # SystemExit with a bare except; the exit code is the normal path.
    _ctl_send(b"reset")
    try:
        sys.stdout.flush()
    except (AttributeError, OSError):
        pass
    raise SystemExit(_EXIT_RESET)


def soft_reset():
    reset()


def reset_cause():
    return _CAUSES.get(os.getenv("PERCH_SIM_RESET_CAUSE") or "", PWRON_RESET)


def unique_id():
    return _world.base_mac()


def freq(hz=None):
    if hz is None:
        return _freq[0]
    if hz not in (20000000, 40000000, 80000000, 160000000, 240000000):
        raise ValueError("frequency must be 20MHz, 40MHz, 80Mhz, 160MHz or 240MHz")
    _freq[0] = hz


def idle():
    time.sleep_ms(1)


def lightsleep(time_ms=None):
    time.sleep_ms(time_ms or 0)


def disable_irq():
    return 0


def enable_irq(state):
    pass


class WDT:
    def __init__(self, id=0, timeout=5000):
        if id != 0:
            raise ValueError("WDT(%d) doesn't exist" % id)
        if timeout <= 0:
            raise ValueError("WDT timeout too short")
        _ctl_send(b"wdt %d" % timeout)

    def feed(self):
        _ctl_send(b"feed")


# Pin, ADC, I2C, SoftI2C and RTC live in _machine_io and load on first use: on the chip all of
# `machine` is C and costs no heap, so the model should cost the board as little as it can.
_LAZY = ("Pin", "ADC", "I2C", "SoftI2C", "RTC")


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(name)
    import _machine_io

    v = getattr(_machine_io, name)
    globals()[name] = v
    return v
