"""Code that runs on Klippy's reactor thread, called by the Klippy module:
it reads printer objects and runs G-code, and never does network, disk,
RSA or image work."""
