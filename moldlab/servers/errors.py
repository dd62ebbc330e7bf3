"""Errors raised by the local server launchers."""


class ServerError(RuntimeError):
    """A local server could not be found, started, or reached."""
