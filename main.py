# Run the active slot's app. An exception escaping it must reset the board, as the chip
# would otherwise sit at the REPL; the note left here tells boot.py why the boot failed.
import sys

import machine

try:
    import perch.app

    perch.app.main()
    _why = "app returned"
except (KeyboardInterrupt, SystemExit):
    # SystemExit is the virtual board's machine.reset() under way; Ctrl-C is a maker at the REPL
    raise
except BaseException as e:
    sys.print_exception(e)
    _why = "%s: %s" % (type(e).__name__, e)
try:
    with open("app/crash.txt", "w") as f:
        f.write(_why[:200])
except OSError:
    pass
machine.reset()
