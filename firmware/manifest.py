# ruff: noqa: F821 - include() and package() are provided by MicroPython's manifest runner
# Freeze manifest: a MicroPython image for ESP32_GENERIC (OTA variant) with Perch frozen in.
#
#   make BOARD=ESP32_GENERIC BOARD_VARIANT=OTA FROZEN_MANIFEST=<this file>   (see README.md)
#
# Paths are relative to this file. Run `tools/perch.py deps` and `tools/perch.py build` first:
# they fetch the pinned microdot and umqtt.simple into ../.deps, the same files the app bundle
# carries, and write ../build/frozen/perch_assets.py, the page files (markup, stylesheet) as
# bytes constants that pages.py reads in place when no slot is installed.
#
# The frozen Perch is the factory version. boot.py puts the active slot (app/a or app/b)
# first on sys.path, so an installed app bundle shadows these modules, and an empty or broken
# filesystem still has a working portal and OTA to recover with. boot.py and main.py are not
# frozen: the firmware runs them from the filesystem, where `perch.py deploy` puts them.

include("$(PORT_DIR)/boards/manifest.py")  # the port's own frozen modules (asyncio, ...)

package("perch", base_path="../lib", opt=3)
package("microdot", base_path="../.deps", opt=3)
package("umqtt", base_path="../.deps", opt=3)
module("perch_assets.py", base_path="../build/frozen", opt=3)
