# Virtual board's ROM: runs boot.py then main.py from the board root (the cwd) the way the
# ESP32 firmware does, both in one shared globals dict named __main__. Module-level code, no
# functions: this module stays loaded (and its code running) for the board's whole life.
import socket  # noqa: F401 - the station gate, for `socket` and `usocket` users alike
import sys

_env = {"__name__": "__main__"}
try:
    for _path in ("boot.py", "main.py"):
        try:
            _f = open(_path)  # noqa: SIM115 - absent file is the common case
        except OSError:
            continue
        with _f:
            # the source is garbage once compiled: it must not stay while main.py runs forever
            _code = compile(_f.read(), _path, "exec")
        exec(_code, _env)  # noqa: S102 - this is the firmware's loader
except SystemExit:
    # machine.reset() and sys.exit() carry their own exit code to the supervisor
    raise
except BaseException as _e:  # noqa: BLE001 - the REPL prints whatever escaped
    sys.print_exception(_e)
    # a real board would now sit at the REPL; the supervisor leaves it there
    sys.exit(1)
