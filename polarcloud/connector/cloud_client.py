"""python-socketio's client, shaped for a connector that has its own thread
and for a cloud whose every packet is untrusted.

Four differences from a plain `socketio.Client`, through hooks
python-socketio 5.x and python-engineio 4.x have had throughout:

* Engine.IO messages are handled on the reader thread, in the order they
  arrive.  python-engineio starts a new thread for every message
  (`run_async`): a storm of cloud events would be as many threads in
  Klippy's process, run in any order.  Our handler only puts the event on
  the connector's inbox, so it never holds the reader up.
* Every cloud event reaches one callback with its name.  The catch-all
  handler ("*") would get an event literally named "*" without its name,
  and a cloud event named "connect" or "disconnect" would reach the
  lifecycle handlers; events never take those paths here.
* Malformed packets are dropped with a debug line.  python-socketio lets a
  decoding error escape (a packet that is not JSON, nests deeper than
  Python's recursion limit, or names its event with a list), and a binary
  packet header announcing no attachments ("6", "50-[...]") leaves it
  waiting for an attachment that never comes: every later packet would be
  taken for it and lost, online, sending statuses, deaf to every command.
* `requests`, `aiohttp` and `tornado` are not loaded into Klippy:
  python-engineio imports them when they are installed, for the
  long-polling transport and its asyncio/tornado clients; the connector
  uses only the websocket transport (websocket-client).  That saves Klippy
  about 8 MiB for requests alone.
"""
import functools
import logging
import sys

log = logging.getLogger("polar_cloud")


# imported by python-engineio when present, never used by the connector
UNUSED_BY_THE_SOCKET = ("requests", "aiohttp", "tornado")


def import_socketio():
    """`socketio`, loaded without UNUSED_BY_THE_SOCKET (unless something
    else in the process loaded them already)."""
    if "engineio" not in sys.modules and "socketio" not in sys.modules:
        hidden = [name for name in UNUSED_BY_THE_SOCKET
                  if name not in sys.modules]
        for name in hidden:
            sys.modules[name] = None      # makes `import name` fail
        try:
            __import__("socketio")
        finally:
            for name in hidden:
                del sys.modules[name]
    import socketio
    return socketio


@functools.lru_cache(maxsize=None)
def _client_class():
    # built on first use: Klippy loads python-socketio only when it connects
    socketio = import_socketio()
    import engineio

    class InlineEngineIO(engineio.Client):
        def _trigger_event(self, event, *args, **kwargs):
            kwargs["run_async"] = False
            return super()._trigger_event(event, *args, **kwargs)

    class CloudClient(socketio.Client):
        def _engineio_client_class(self):
            return InlineEngineIO

        on_event = None

        def _handle_eio_message(self, data):
            try:
                super()._handle_eio_message(data)
            except Exception as e:
                # whatever it was waiting for will not come right now
                self._binary_packet = None
                log.debug("polar_cloud: dropped a malformed packet (%s)",
                          e.__class__.__name__)
            waiting = self._binary_packet
            if waiting is not None \
                    and not getattr(waiting, "attachment_count", 1):
                self._binary_packet = None   # nothing will complete it
                log.debug("polar_cloud: dropped a binary packet without"
                          " attachments")

        def _handle_event(self, namespace, id, data):
            # the cloud never asks for an acknowledgement: none is sent
            if isinstance(data, list) and data:
                self.on_event(data[0], tuple(data[1:]))

    return CloudClient


def cloud_client(on_event, on_disconnect):
    """A Socket.IO client that calls on_event(name, args) on its reader
    thread for every event and on_disconnect() when the link drops."""
    client = _client_class()(reconnection=False, handle_sigint=False,
                             logger=False, engineio_logger=False)
    client.on_event = on_event
    client.on("disconnect", lambda *reason: on_disconnect())
    return client
