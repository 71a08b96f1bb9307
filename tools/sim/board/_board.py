# Virtual board's ROM: runs boot.py then main.py from the board root (the cwd) the way the
# ESP32 firmware does, both in one shared globals dict named __main__.
import socket  # noqa: F401 - the station gate, for `socket` and `usocket` users alike
import sys


def _run(path, env):
    try:
        f = open(path)  # noqa: SIM115 - absent file is the common case
    except OSError:
        return
    with f:
        # the source is garbage once compiled: it must not stay while main.py runs forever
        code = compile(f.read(), path, "exec")
    exec(code, env)  # noqa: S102 - this is the firmware's loader


def _boot():
    env = {"__name__": "__main__"}
    try:
        _run("boot.py", env)
        _run("main.py", env)
    except SystemExit:
        # machine.reset() and sys.exit() carry their own exit code to the supervisor
        raise
    except BaseException as e:  # noqa: BLE001 - the REPL prints whatever escaped
        sys.print_exception(e)
        # a real board would now sit at the REPL; the supervisor leaves it there
        sys.exit(1)


_boot()
