"""The edge exception tree (drawn in edge/__init__.py)."""


class EdgeError(Exception):
    """Something the edge gateway cannot do; the text says what and where."""


class ConfigError(EdgeError):
    """A gateway config or register map that cannot be read or is not valid."""


class DeviceError(EdgeError):
    """A machine that did not answer a poll, or answered with an error or nonsense."""
