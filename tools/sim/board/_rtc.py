# machine.RTC of the virtual board, loaded on first use (the NTP sync sets it): the host clock,
# as the board's clock counts as NTP-synced (SPEC 5), moved by whatever datetime() sets.
import time

_off = 0


class RTC:
    def __init__(self, id=0):
        pass

    def datetime(self, datetimetuple=None):
        global _off
        if datetimetuple is None:
            t = time.gmtime(time.time() + _off)
            # (year, month, day, weekday, hours, minutes, seconds, subseconds)
            return (t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0)
        y, mo, d, _wd, h, mi, s = datetimetuple[:7]
        # both sides through mktime, so the host's time zone cancels out
        _off = time.mktime((y, mo, d, h, mi, s, 0, 0)) - time.mktime(time.gmtime(int(time.time())))

    init = datetime
