# Klippy runs with this folder first on PYTHONPATH in tests and benchmarks:
# a printer's Klipper virtualenv has no aiohttp (only the test emulator
# needs it), and python-socketio imports it when present, which would add
# ~20 MiB to Klippy and hide what owners really get.
raise ImportError("aiohttp is not installed in a printer's Klipper venv")
