"""python-socketio's client, shaped for a connector that has its own thread
and for a cloud whose every packet is untrusted.

How it differs from a plain `socketio.Client`, through hooks that
python-socketio 5.x, python-engineio 4.4+ and websocket-client 1.3+ have:

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
* A message larger than MAX_MESSAGE_BYTES ends the connection (and is
  told) before its payload is read: websocket-client has no limit, so a
  broken or hostile cloud could grow Klippy's memory without bound.
* websocket-client checks every text frame's UTF-8 in pure Python (about
  20 us a command, 0.3 ms a KiB, on the GIL the reactor needs) unless
  told not to, and then decodes it strictly in C anyway: the check is
  skipped, invalid UTF-8 still ends the connection as before.
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

# The largest message the cloud sends is a `print` or `getUrlResponse` with
# signed URLs, a few KiB; parsing 256 KiB of JSON holds the GIL ~2 ms.
MAX_MESSAGE_BYTES = 256 * 1024


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
    import websocket

    def check_size(size, on_too_large):
        if size > MAX_MESSAGE_BYTES:
            on_too_large(size)
            raise websocket.WebSocketPayloadException(
                "message of %d bytes" % (size,))

    class BoundedFrames(websocket.frame_buffer):
        def recv_length(self):
            super().recv_length()
            check_size(self.length, self.on_too_large)

    class BoundedMessages(websocket.continuous_frame):
        # a message sent as many small continuation frames
        def add(self, frame):
            held = len(self.cont_data[1]) if self.cont_data else 0
            check_size(held + len(frame.data), self.on_too_large)
            super().add(frame)

    class CloudWebSocket(websocket.WebSocket):
        def __init__(self, on_too_large, **options):
            options["skip_utf8_validation"] = True
            super().__init__(**options)
            self.frame_buffer = BoundedFrames(self._recv, True)
            self.cont_frame = BoundedMessages(
                options.get("fire_cont_frame", False), True)
            self.frame_buffer.on_too_large = on_too_large
            self.cont_frame.on_too_large = on_too_large

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

    return CloudClient, CloudWebSocket


def websocket_class():
    """The WebSocket class the client reads with: (on_too_large, **options)."""
    return _client_class()[1]


def cloud_client(on_event, on_disconnect, on_too_large=lambda size: None):
    """A Socket.IO client that calls on_event(name, args) on its reader
    thread for every event, on_too_large(bytes) there before it drops a
    message over MAX_MESSAGE_BYTES, and on_disconnect() when the link
    drops."""
    client_class, websocket_class = _client_class()
    client = client_class(
        reconnection=False, handle_sigint=False, logger=False,
        engineio_logger=False, websocket_extra_options={
            "class_": functools.partial(websocket_class, on_too_large)})
    client.on_event = on_event
    client.on("disconnect", lambda *reason: on_disconnect())
    return client
