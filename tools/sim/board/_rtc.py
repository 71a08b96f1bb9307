# The rarely used part of the virtual board's `machine` module, loaded for each use and
# dropped after (machine._lazy): RTC, reset_cause() with its *_RESET constants, unique_id()
# and the start of the WDT. RTC (set by the NTP sync) is the host clock, as the board's clock
# counts as NTP-synced (SPEC 5), moved by what datetime() sets (the offset is kept in machine,
# which stays).
import os
import time

import machine
from micropython import const

# machine.reset_cause() values, here rather than in machine: perch reads none of them
PWRON_RESET = const(1)
HARD_RESET = const(2)
WDT_RESET = const(3)
DEEPSLEEP_RESET = const(4)
SOFT_RESET = const(5)


def reset_cause():
    # fixed for this process by the supervisor: PERCH_SIM_RESET_CAUSE is a *_RESET name
    c = globals().get(os.getenv("PERCH_SIM_RESET_CAUSE") or "")
    return c if type(c) is int else PWRON_RESET  # the only ints here are the causes


def _wdt(id, timeout):
    # machine.WDT(id, timeout): the supervisor starts the watchdog
    if id != 0:
        raise ValueError("WDT(%d) doesn't exist" % id)
    if timeout <= 0:
        raise ValueError("WDT timeout too short")
    machine._ctl_send("wdt %d" % timeout)


def unique_id():
    # the base MAC (PERCH_SIM_MAC), which is the STA MAC; the AP's is one more
    try:
        mac = bytes.fromhex(os.getenv("PERCH_SIM_MAC") or "")[:6]
    except ValueError:
        mac = b""
    return mac or b"\x24\x0a\xc4\x00\x00\x01"


class RTC:
    def __init__(self, id=0):
        pass

    def datetime(self, datetimetuple=None):
        if datetimetuple is None:
            t = time.gmtime(time.time() + getattr(machine, "_rtc", 0))
            # (year, month, day, weekday, hours, minutes, seconds, subseconds)
            return (t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0)
        y, mo, d, _wd, h, mi, s = datetimetuple[:7]
        # both sides through mktime, so the host's time zone cancels out
        t = time.mktime(time.gmtime(int(time.time())))
        machine._rtc = time.mktime((y, mo, d, h, mi, s, 0, 0)) - t

    init = datetime
