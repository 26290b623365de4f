"""What the connector asks of the process it lives in.

The Klippy module implements Host on Klippy's reactor: urgent commands,
prints and replies at once (`reactor.register_async_callback`); routine
commands, `publish`, `status_sent` and `console` with its next printer
sample (within 0.5 s), so they never wake the reactor on their own.  The connector's tests
implement it with a recorder.  Every method is called on the connector
thread and must return at once.
"""


class Host:
    def publish(self, info):
        """The connection's public state changed (the `polar_cloud`
        printer object and the status endpoint show `info`)."""
        raise NotImplementedError

    def status_sent(self, status):
        """A status went to the cloud (Moonraker notifies its clients)."""
        raise NotImplementedError

    def console(self, message):
        """One line for the printer's console (and klippy.log)."""
        raise NotImplementedError

    def online(self):
        """Hello was accepted: answer with connection.set_online_extras()
        (the macros offered as buttons, Klipper's version)."""
        raise NotImplementedError

    def check_alive(self):
        """False once this printer object is gone (Klippy restarted
        without telling us); the connection then stops."""
        raise NotImplementedError

    def run_commands(self, commands, urgent, done):
        """Carry out cloud commands, a list of (event, data) in order, on
        the printer (at once when urgent, else within 0.5 s, after any
        earlier batch); call done() when finished."""
        raise NotImplementedError

    def start_print(self, filename, reply):
        """Start printing a downloaded file (relative to the virtual SD
        card); reply(None) once started, else reply(reason)."""
        raise NotImplementedError
