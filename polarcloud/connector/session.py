"""One Socket.IO connection to Polar Cloud, from connect until it drops.

Everything that holds only for one socket lives here, so a drop discards
it whole and nothing is reset by hand: the welcome challenge (single use),
whether hello was sent and answered, the camera the hello announced, and
the upload URLs the cloud issued on this connection.
"""
import logging

from ..camera import UploadUrls

log = logging.getLogger("polar_cloud")


class Session:
    def __init__(self, client, generation, now):
        self.client = client
        self.generation = generation   # tags the client's callbacks
        self.opened = now
        self.welcomed = False
        self.challenge = None
        self.hello_sent = False
        self.authenticated = False
        self.hello_camera = None
        self.upload_urls = UploadUrls()
        self.lost_because = None      # why the cloud's end dropped, if known

    def take_challenge(self):
        challenge, self.challenge = self.challenge, None
        return challenge

    def emit(self, event, data):
        self.client.emit(event, data)

    def close(self):
        close_client(self.client)


def close_client(client):
    try:
        client.disconnect()
    except Exception:
        log.debug("polar_cloud: disconnect failed", exc_info=True)
