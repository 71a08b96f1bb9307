# SNTP over a non-blocking socket: ntptime.settime() blocks the loop for up to a second
# per try (and DNS before it for longer). Sets the RTC once the station is up (SPEC §5).
# Needed once per boot at most: it drops itself (and the DNS lookup) from sys.modules when
# done, so that its RAM comes back.

import asyncio
import socket
import struct
import time

from perch import log
from perch.config import drop

# plain ints: both exceed the ESP32 small-int range that const() folds
_NTP_DELTA = 2208988800  # 1900 -> 1970
_EPOCH_S = 946684800 if time.gmtime(0)[0] == 2000 else 0  # the port's epoch after 1970

_log = log.Logger("sntp")


async def sync(host="pool.ntp.org", timeout_ms=5000, port=123, set_time=None):
    """Ask host once (re-sent every second until timeout_ms); True when the clock was set.

    set_time(tm) gets a time.gmtime()-style tuple in the port's epoch (default: the RTC).
    """
    try:
        ip = host
        if not host.replace(".", "").isdigit():
            from perch import dnsquery

            ip = await dnsquery.resolve(host, timeout_ms)
        addr = socket.getaddrinfo(ip, port)[0][-1]
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.setblocking(False)
            q = bytearray(48)
            q[0] = 0x1B  # LI 0, version 3, mode 3 (client)
            t0 = time.ticks_ms()
            resend = 0
            while True:
                el = time.ticks_diff(time.ticks_ms(), t0)
                if el >= timeout_ms:
                    break
                if el >= resend:
                    s.sendto(q, addr)
                    resend += 1000
                try:
                    m = s.recv(48)
                except OSError:
                    m = None
                if m and len(m) >= 48 and m[0] & 0x07 == 4:  # a server reply
                    secs = struct.unpack("!I", m[40:44])[0]
                    if not secs:
                        break  # kiss-o'-death: no time from this server
                    tm = time.gmtime(secs - _NTP_DELTA - _EPOCH_S)
                    if set_time:
                        set_time(tm)
                    else:
                        from perch import hw

                        hw.set_rtc(tm)
                    _log.info("clock set by NTP", server=host)
                    return True
                await asyncio.sleep_ms(20)
        finally:
            s.close()
        _log.warning("NTP: no answer", server=host)
    except Exception as e:
        _log.warning("NTP failed", server=host, error=str(e))
    finally:
        drop("dnsquery")
        drop("sntp")
    return False
