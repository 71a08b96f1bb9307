# The ESP32 port's dht module on the virtual board: values come from the world file.
import _sensors


class DHTBase:
    def __init__(self, pin):
        self.pin = pin
        self.buf = bytearray(5)
        self._t = 0.0
        self._h = 0.0

    def measure(self):
        self._t, self._h = _sensors.dht22_read()


class DHT11(DHTBase):
    def humidity(self):
        return int(self._h)

    def temperature(self):
        return int(self._t)


class DHT22(DHTBase):
    def humidity(self):
        return self._h

    def temperature(self):
        return self._t
