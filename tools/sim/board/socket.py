# Shadows the built-in socket module on the virtual board: everything is the real module,
# except that name lookups fail while the simulated station is down, as on a real board
# with no network (SPEC 7). Listening on 0.0.0.0 / "" keeps working, as in AP mode.
import sys

try:
    import usocket as _real  # the built-in, unless this module already took over the u-name

    if hasattr(_real, "__file__"):  # built-in modules have no file
        raise ImportError
except ImportError:
    # hide this file and import the built-in under its own name
    _me = sys.modules.pop(__name__, None)
    _path = sys.path[:]
    sys.path[:] = [p for p in _path if p != __file__.rpartition("/")[0]]
    try:
        _real = __import__(__name__)
    finally:
        sys.path[:] = _path
        if _me is not None:
            sys.modules[__name__] = _me
    del _me, _path


def __getattr__(name):
    # every other name is the built-in's, looked up there rather than copied here
    return getattr(_real, name)


def getaddrinfo(host, port, *args):
    if host not in ("0.0.0.0", "") and not __import__("network").WLAN(0).isconnected():
        raise OSError(-2)  # name resolution fails: no station link
    return _real.getaddrinfo(host, port, *args)


# Libraries written for MicroPython (umqtt.simple among them) import the u-name, which the
# Unix port resolves to the built-in before any file: route them through the gate too.
sys.modules["usocket"] = sys.modules[__name__]
