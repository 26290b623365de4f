"""Helpers install.sh runs (with Klipper's Python, standard library plus
the runtime dependencies): moving a printer over from Polar3D's connector
(migrate.py) and asking Klipper whether it prints (printer_api.py)."""
