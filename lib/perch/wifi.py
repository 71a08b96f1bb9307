# Wi-Fi supervisor: joins the saved networks, runs the setup access point (with
# the captive DNS) when none is reachable, tests credentials entered in the
# portal while the AP stays up, and falls back to the AP after a long outage.
#
# WLAN.scan() blocks its caller for the whole channel sweep (about 1-2 s), on
# the chip as on the virtual board. It runs in a _thread so the asyncio loop
# keeps serving: the ESP32 port releases the GIL inside esp_wifi_scan_start(),
# and the loop only polls a flag. Without _thread the scan runs inline.
import asyncio
import time

from micropython import const

from perch import config, dns, hw, log

try:
    from _thread import start_new_thread
except ImportError:
    start_new_thread = None  # type: ignore[assignment]

_log = log.Logger("wifi")

AP_IP = "192.168.4.1"
_TICK_MS = const(200)
_POLL_MS = const(100)
_SCAN_POLL_MS = const(20)
_AP_RESCAN_MS = const(15_000)  # background scan cadence while the portal is up
_RETRY_MS = const(10_000)  # station down: retry the saved networks this often
_BACKOFF_MAX_MS = const(120_000)
_MAX_LIST = const(30)

_SECURITY = ("open", "wep", "wpa", "wpa2", "wpa/wpa2", "wpa2-enterprise", "wpa3",
             "wpa2/wpa3", "wapi", "owe")
_REASONS = {
    hw.STAT_WRONG_PASSWORD: "wrong password",
    hw.STAT_HANDSHAKE_TIMEOUT: "wrong password",
    hw.STAT_NO_AP_FOUND: "SSID not found",
    hw.STAT_ASSOC_FAIL: "association refused",
    hw.STAT_BEACON_TIMEOUT: "signal lost",
}


def security_name(auth):
    if isinstance(auth, str):
        return auth
    return _SECURITY[auth] if 0 <= auth < len(_SECURITY) else "other"


def digest_scan(raw):
    """Scan tuples -> [{ssid, rssi, channel, security, hidden}], one per SSID
    (its strongest BSS), strongest first. Hidden (nameless) BSSs are left out:
    they are joined through the manual SSID field."""
    best = {}  # type: dict
    for t in raw:
        ssid = t[0]
        if not ssid:
            continue
        try:
            name = bytes(ssid).decode()
        except UnicodeError:
            continue
        rssi = t[3]
        cur = best.get(name)
        if cur is None or rssi > cur["rssi"]:
            best[name] = {"ssid": name, "rssi": rssi, "channel": t[2],
                          "security": security_name(t[4]), "hidden": bool(t[5])}
    out = sorted(best.values(), key=lambda n: -n["rssi"])
    return out[:_MAX_LIST]


def join_order(saved, visible):
    """Saved networks to try: visible ones by priority then signal, then hidden
    ones (a scan cannot see them). Saved, visible-capable networks missing from
    the scan are skipped."""
    rssi = {n["ssid"]: n["rssi"] for n in visible}
    seen = [n for n in saved if n["ssid"] in rssi]
    seen.sort(key=lambda n: (-n.get("priority", 0), -rssi[n["ssid"]]))
    hidden = [n for n in saved if n["ssid"] not in rssi and n.get("hidden")]
    hidden.sort(key=lambda n: -n.get("priority", 0))
    return seen + hidden


class Wifi:
    def __init__(self, ctx):
        self.ctx = ctx
        self.sta = hw.wlan(hw.STA_IF)
        self.ap = hw.wlan(hw.AP_IF)
        self.nets = []
        self.scan_at = None
        self.scanning = False
        self._want_scan = False
        self._wake = asyncio.Event()  # a page asked for something: skip the rest of the tick
        self._scan_out = None  # written by the scan thread, read by the loop
        self.attempt = {"ssid": None, "state": "idle", "reason": None, "ip": None}
        self._job = None
        self.ap_on = False
        self.ap_off_at = None
        self.link = None  # SSID of the joined network
        self.down_since = None
        self._retry_at = 0
        self._backoff = {}  # ssid -> (failures, ticks of the last failure)
        self.listeners = []  # callables(up: bool), e.g. NTP on connect
        self.dns = dns.Server(ctx.cfg["dns.port"], AP_IP, _log)
        self.ap_ssid = ctx.device_id

    # --- what the rest of the firmware reads -------------------------------

    def saved(self):
        return self.ctx.cfg["wifi.networks"]

    def mode(self):
        if self.ap_on:
            return "ap+sta" if self.link else "ap"
        return "sta"

    def status(self):
        up = self.link is not None
        rssi = None
        if up:
            try:
                rssi = self.sta.status("rssi")
            except (OSError, ValueError):
                pass
        return {"ssid": self.link, "rssi": rssi,
                "ip": self.sta.ifconfig()[0] if up else None}

    def healthy(self):
        return not self.saved() or self.link is not None

    def station_ip(self):
        return self.sta.ifconfig()[0] if self.link else None

    def scan_doc(self):
        age = None
        if self.scan_at is not None:
            age = time.ticks_diff(time.ticks_ms(), self.scan_at) // 1000
        return {"networks": self.nets, "scanning": self.scanning or self._want_scan,
                "age_s": age}

    def request_scan(self):
        self._want_scan = True
        self._wake.set()

    def request_join(self, ssid, password, hidden=False, priority=0):
        """Queue a credential test; the supervisor runs it while the AP stays up."""
        self._job = {"ssid": ssid, "password": password, "hidden": hidden,
                     "priority": priority}
        self.attempt = {"ssid": ssid, "state": "connecting", "reason": None, "ip": None}
        self._wake.set()

    def forget(self, ssid):
        nets = [n for n in self.saved() if n["ssid"] != ssid]
        if len(nets) == len(self.saved()):
            return False
        self.ctx.cfg.update({"wifi.networks": nets})
        _log.info("network forgotten", ssid=ssid)
        return True

    # --- access point ---------------------------------------------------------

    def ap_start(self, why):
        if self.ap_on:
            self.ap_off_at = None
            return
        pw = self.ctx.cfg["ap.password"]
        self.ap.active(True)
        if pw:
            self.ap.config(ssid=self.ap_ssid, security=hw.AUTH_WPA2_PSK, key=pw)
        else:
            self.ap.config(ssid=self.ap_ssid, security=hw.AUTH_OPEN)
        self.ap_on = True
        self.ap_off_at = None
        try:
            self.dns.start()
        except OSError as e:
            _log.error("captive DNS failed to start", err=e)
        _log.info("access point up", ssid=self.ap_ssid, ip=AP_IP, secured=bool(pw), why=why)

    def ap_stop(self):
        if not self.ap_on:
            return
        self.dns.stop()
        self.ap.active(False)
        self.ap_on = False
        self.ap_off_at = None
        _log.info("access point down")

    def _linger(self):
        self.ap_off_at = time.ticks_add(time.ticks_ms(), self.ctx.cfg["ap.linger_s"] * 1000)

    # --- radio work: only the supervisor task calls these ---------------------

    def _scan_worker(self):
        try:
            out = self.sta.scan()
        except Exception as e:  # noqa: BLE001 - handed to the loop, which logs it
            out = e
        self._scan_out = out

    async def scan(self):
        self._want_scan = False
        self.scanning = True
        self._scan_out = None
        started = False
        if start_new_thread is not None:
            try:
                start_new_thread(self._scan_worker, ())
                started = True
            except (OSError, RuntimeError, MemoryError) as e:
                _log.warning("scan thread unavailable, scanning inline", err=e)
        if not started:
            self._scan_worker()
        while self._scan_out is None:
            await asyncio.sleep_ms(_SCAN_POLL_MS)
        out = self._scan_out
        self._scan_out = None
        self.scanning = False
        if isinstance(out, Exception):
            _log.warning("scan failed", err=out)
            return
        self.nets = digest_scan(out)
        self.scan_at = time.ticks_ms()
        _log.debug("scan done", networks=len(self.nets))

    async def _connect(self, ssid, password, timeout_ms):
        """None on success, else a reason: wrong password, SSID not found, timeout."""
        try:
            self.sta.disconnect()
            self.sta.connect(ssid, password)
        except OSError as e:
            return "radio error: %s" % e
        t0 = time.ticks_ms()
        while True:
            await asyncio.sleep_ms(_POLL_MS)
            st = self.sta.status()
            if st == hw.STAT_GOT_IP:
                self._up(ssid)
                return None
            if st in _REASONS:
                self.sta.disconnect()
                return _REASONS[st]
            if time.ticks_diff(time.ticks_ms(), t0) > timeout_ms:
                self.sta.disconnect()
                return "timeout"

    def _up(self, ssid):
        self.link = ssid
        self.down_since = None
        self._backoff.pop(ssid, None)
        _log.info("station connected", ssid=ssid, ip=self.sta.ifconfig()[0])
        for fn in self.listeners:
            try:
                fn(True)
            except Exception as e:  # noqa: BLE001 - a listener must not stop Wi-Fi
                _log.exc(e, "wifi listener failed")

    def _down(self):
        _log.warning("station link lost", ssid=self.link)
        self.link = None
        self.down_since = time.ticks_ms()
        for fn in self.listeners:
            try:
                fn(False)
            except Exception as e:  # noqa: BLE001
                _log.exc(e, "wifi listener failed")

    def _may_try(self, ssid, now):
        b = self._backoff.get(ssid)
        if b is None:
            return True
        wait = min(_RETRY_MS << min(b[0], 6), _BACKOFF_MAX_MS)
        return time.ticks_diff(now, b[1]) >= wait

    async def join_saved(self, background=False):
        saved = self.saved()
        if not saved:
            return False
        await self.scan()
        timeout = self.ctx.cfg["wifi.timeout_s"] * 1000
        now = time.ticks_ms()
        for n in join_order(saved, self.nets):
            if self._job is not None:
                return False  # the user is waiting: their network first
            if background and not self._may_try(n["ssid"], now):
                continue
            why = await self._connect(n["ssid"], n["password"], timeout)
            if why is None:
                return True
            b = self._backoff.get(n["ssid"], (0, 0))
            self._backoff[n["ssid"]] = (b[0] + 1, time.ticks_ms())
            _log.warning("join failed", ssid=n["ssid"], reason=why)
        return False

    async def _run_job(self, job):
        self._job = None
        ssid = job["ssid"]
        was = self.link
        if was:
            self.link = None
        _log.info("testing credentials", ssid=ssid, ap=self.ap_on)
        why = await self._connect(ssid, job["password"], self.ctx.cfg["wifi.timeout_s"] * 1000)
        if self._job is not None:
            return  # superseded by a newer request while this one ran
        if why is None:
            self._save(job)
            self.attempt = {"ssid": ssid, "state": "connected", "reason": None,
                            "ip": self.sta.ifconfig()[0]}
            if self.ap_on:
                self._linger()
            return
        self.attempt = {"ssid": ssid, "state": "failed", "reason": why, "ip": None}
        _log.warning("credentials rejected", ssid=ssid, reason=why)
        if was or not self.ap_on:
            if not await self.join_saved():
                self.ap_start("saved networks unreachable")

    def _save(self, job):
        nets = [n for n in self.saved() if n["ssid"] != job["ssid"]]
        nets.append({"ssid": job["ssid"], "password": job["password"],
                     "hidden": job["hidden"], "priority": job["priority"]})
        nets.sort(key=lambda n: -n["priority"])
        try:
            self.ctx.cfg.update({"wifi.networks": nets})
            _log.info("network saved", ssid=job["ssid"], saved=len(nets))
        except config.ConfigError as e:
            _log.error("network not saved", err=e)

    # --- the supervisor task ----------------------------------------------------

    async def run(self):
        try:
            hw.set_hostname(self.ctx.device_id)
        except (OSError, ValueError):
            pass
        self.sta.active(True)
        self._retry_at = time.ticks_add(time.ticks_ms(), _RETRY_MS)
        if not self.saved():
            self.ap_start("no saved network")
        elif not await self.join_saved():
            self.ap_start("no saved network reachable")
        while True:
            try:
                await self._step()
            except Exception as e:  # noqa: BLE001 - the supervisor must survive
                _log.exc(e, "wifi supervisor step failed")
                await asyncio.sleep_ms(1000)
            try:
                await asyncio.wait_for_ms(self._wake.wait(), _TICK_MS)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()

    async def _step(self):
        job = self._job
        if job is not None:
            await self._run_job(job)
            return
        now = time.ticks_ms()
        if self.sta.isconnected():
            if self.link is None:
                # The driver rejoined by itself (the AP came back).
                self._up(self.sta.config("ssid"))
            if self.ap_on:
                if self.ap_off_at is None:
                    self._linger()
                elif time.ticks_diff(now, self.ap_off_at) >= 0:
                    self.ap_stop()
        else:
            if self.link is not None:
                self._down()
                self._retry_at = time.ticks_add(now, _RETRY_MS)
            if self.ap_on:
                self.ap_off_at = None
            elif self.down_since is not None and time.ticks_diff(
                    now, self.down_since) >= self.ctx.cfg["wifi.fallback_s"] * 1000:
                self.ap_start("station down for %d s" % self.ctx.cfg["wifi.fallback_s"])
            if self.saved() and time.ticks_diff(now, self._retry_at) >= 0:
                await self.join_saved(background=True)
                self._retry_at = time.ticks_add(time.ticks_ms(), _RETRY_MS)
                return
        if self._want_scan or (self.ap_on and (
                self.scan_at is None
                or time.ticks_diff(now, self.scan_at) >= _AP_RESCAN_MS)):
            await self.scan()


_wifi = None


def get():
    return _wifi


def setup(ctx):
    global _wifi
    w = Wifi(ctx)
    _wifi = w
    ctx.wifi = w
    ctx.status["wifi"] = w.status
    ctx.status["mode"] = w.mode
    ctx.health["wifi"] = w.healthy
    asyncio.create_task(w.run())
