# Shadows the built-in socket module on the virtual board: everything is the real module,
# except that name lookups fail while the simulated station is down, as on a real board
# with no network (SPEC 7). Listening on 0.0.0.0 / "" keeps working, as in AP mode.
import sys


def _real_socket():
    try:
        import usocket  # the built-in, unless this module already took over the u-name

        if not hasattr(usocket, "__file__"):  # built-in modules have no file
            return usocket
    except ImportError:
        pass
    # no u-alias in this build: hide this file and import the built-in under its own name
    me = sys.modules.pop(__name__, None)
    saved = sys.path[:]
    here = __file__.rsplit("/", 1)[0] if "/" in __file__ else ""
    sys.path[:] = [p for p in saved if p != here]
    try:
        return __import__(__name__)
    finally:
        sys.path[:] = saved
        if me is not None:
            sys.modules[__name__] = me


_real = _real_socket()
for _k in dir(_real):
    if not _k.startswith("__"):
        globals()[_k] = getattr(_real, _k)
del _k

_OPEN_HOSTS = ("0.0.0.0", "")


def getaddrinfo(host, port, af=0, type=0, proto=0, flags=0):
    if host not in _OPEN_HOSTS:
        import network

        if not network._sta_up():
            raise OSError(-2)  # name resolution fails: no station link
    return _real.getaddrinfo(host, port, af, type, proto, flags)


# Libraries written for MicroPython (umqtt.simple among them) import the u-name, which the
# Unix port resolves to the built-in before any file: route them through the gate too.
sys.modules["usocket"] = sys.modules[__name__]
