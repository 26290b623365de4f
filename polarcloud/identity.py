"""Who this printer is on the network: MAC, LAN address, hello identity.

Polar Cloud ties a printer's serial to the MAC sent at registration
(docs/protocol.md#identity), so the MAC is stored in state.json then and
reused; a host without a readable MAC gets a random, locally administered
one, which is stored the same way instead of a shared 00:00:00:00:00:00.
"""
import os
import socket
import urllib.parse
import uuid

from . import VERSION
from .protocol import MACHINE_TYPES


def format_mac(node):
    return ":".join("%02X" % ((node >> s) & 0xff) for s in range(40, -1, -8))


def detect_mac():
    node = uuid.getnode()
    if (node >> 40) & 1:
        return None   # random multicast value: Python found no real MAC
    return format_mac(node)


def random_mac():
    """Locally administered, unicast (bits 1 and 0 of the first byte)."""
    first, *rest = os.urandom(6)
    node = (first & 0xfc) | 0x02
    for b in rest:
        node = (node << 8) | b
    return format_mac(node)


def local_ip(url):
    """LAN address of the interface that routes to the cloud's host.

    A UDP "connect" sends no packet; it only asks the kernel for a route."""
    host = urllib.parse.urlsplit(url).hostname or "127.0.0.1"
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.connect((host, 443))
            return s.getsockname()[0]
        finally:
            s.close()
    except OSError:
        return "127.0.0.1"


def identity(settings, mac):
    machine = MACHINE_TYPES.get(settings.printer_type, "Cartesian")
    return {"mac": mac, "local_ip": local_ip(settings.url),
            "mfg_sn": "KL-" + mac.replace(":", ""),
            "machine_type": machine,
            "printer_make": settings.printer_make or machine,
            "version": VERSION}
