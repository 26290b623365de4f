"""The connector thread: everything that runs beside Klippy's reactor.

connection.py owns the thread, its inbox and the one Socket.IO client;
the other modules are the concerns it delegates to.  Nothing here touches
Klippy objects: the Klippy module (the host, see polarcloud/host.py) hands
work to the reactor.
"""
