# `tools/perch.py build --version V` replaces this file in the bundle.
VERSION = "1.0.0"
