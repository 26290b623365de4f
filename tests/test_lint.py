"""Static checks: no unused or undefined names anywhere in the project."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_pyflakes_clean():
    folders = ["polarcloud", "klippy_extras", "moonraker_components",
               "tests", "bench", "scripts"]
    proc = subprocess.run([sys.executable, "-m", "pyflakes"] + folders,
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_klippy_module_compiles_for_python39_syntax():
    # Klipper hosts run Python 3.9+: no syntax newer than that here
    import ast
    for folder in ("klippy_extras", "polarcloud"):
        for name in os.listdir(os.path.join(ROOT, folder)):
            if name.endswith(".py"):
                with open(os.path.join(ROOT, folder, name)) as f:
                    ast.parse(f.read(), feature_version=(3, 9))
