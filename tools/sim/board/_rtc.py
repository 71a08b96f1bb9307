# machine.RTC (and the *_RESET constants) of the virtual board, loaded for each use (the NTP
# sync sets it) and dropped after: the host clock, as the board's clock counts as NTP-synced
# (SPEC 5), moved by what datetime() sets (the offset is kept in machine, which stays).
import time

import machine
from micropython import const

# machine.reset_cause() values, here rather than in machine: perch reads none of them
PWRON_RESET = const(1)
HARD_RESET = const(2)
WDT_RESET = const(3)
DEEPSLEEP_RESET = const(4)
SOFT_RESET = const(5)


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
