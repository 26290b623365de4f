#!/bin/bash
# Install the real browser the page tests drive (tests/test_e2e_page.py):
# Debian's chromium and chromium-driver. Selenium itself comes from PyPI
# (requirements-dev.txt). Idempotent: installs only what is missing.
# usage: scripts/setup-browser.sh
set -euo pipefail
need_apt=()
for pkg in chromium chromium-driver; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -eq 0 ]; then
    echo "setup-browser: chromium and chromium-driver already installed"
    exit 0
fi
echo "setup-browser: installing ${need_apt[*]} (Debian)"
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need_apt[@]}"
echo "setup-browser: ready ($(command -v chromedriver))"
