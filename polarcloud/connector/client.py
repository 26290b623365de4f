"""The Socket.IO client, hardened against malformed packets.

python-socketio decodes each incoming packet on a thread of its own and
lets a decoding error escape it: a packet that is not JSON, nests deeper
than Python's recursion limit or names its event with a list prints a
traceback on Klippy's stderr, every time.  Worse, a binary packet header
announcing no attachments ("6", "50-[...]" style) leaves the client
waiting for an attachment that never comes, and every later packet is
taken for it and lost: online, sending statuses, deaf to every command.
Such packets are dropped here with a debug line.
"""
import logging

import socketio

log = logging.getLogger("polar_cloud")


class GuardedClient(socketio.Client):
    def _handle_eio_message(self, data):
        try:
            super()._handle_eio_message(data)
        except Exception as e:
            # whatever it was waiting for will not come right now
            self._binary_packet = None
            log.debug("polar_cloud: dropped a malformed packet (%s)",
                      e.__class__.__name__)
        waiting = self._binary_packet
        if waiting is not None and not getattr(waiting, "attachment_count",
                                               1):
            self._binary_packet = None   # no attachment will ever complete it
            log.debug("polar_cloud: dropped a binary packet without"
                      " attachments")
