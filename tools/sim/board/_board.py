# Virtual board's ROM: runs boot.py then main.py from the board root (the cwd) the way the
# ESP32 firmware does, both in one shared globals dict named __main__.
import socket  # noqa: F401 - the station gate, for `socket` and `usocket` users alike
import sys


def _run(path, env):
    try:
        f = open(path)  # noqa: SIM115 - absent file is the common case
    except OSError:
        return False
    with f:
        src = f.read()
    exec(compile(src, path, "exec"), env)  # noqa: S102 - this is the firmware's loader
    return True


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
