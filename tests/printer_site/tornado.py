# See aiohttp.py: a printer's Klipper virtualenv has no tornado either (it
# is Moonraker's, in its own venv); python-engineio imports it when present.
raise ImportError("tornado is not installed in a printer's Klipper venv")
