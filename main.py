# Run the active slot's app. An exception escaping it must reset the board, as the chip
# would otherwise sit at the REPL; boot.py then counts the failed boot.
import sys

import machine

try:
    import perch.app

    perch.app.main()
except Exception as e:
    sys.print_exception(e)
    machine.reset()
