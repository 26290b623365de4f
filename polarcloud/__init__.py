"""Polar Cloud connector for Klipper: the plain-Python half.

Nothing in this package imports Klippy.  The Klippy extras module
(klippy_extras/polar_cloud.py) adapts it to the reactor; everything here can
be unit-tested on its own.
"""
import os

VERSION = "0.1.0"
# Repository root: child processes are started with it on PYTHONPATH.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
