"""Local infrastructure for `moldlab demo` and tests, run as child processes the caller owns.

Exceptions::

    RuntimeError
     └── ServerError      a server could not be found, started or reached
"""

from moldlab.servers.errors import ServerError
from moldlab.servers.mqtt import LocalMosquitto, LocalPythonBroker, local_broker
from moldlab.servers.postgres import (
    LocalPostgres,
    cluster_dir,
    create_database,
    drop_database,
    find_postgres_bin_dir,
)

__all__ = [
    "LocalMosquitto",
    "LocalPostgres",
    "LocalPythonBroker",
    "ServerError",
    "cluster_dir",
    "create_database",
    "drop_database",
    "find_postgres_bin_dir",
    "local_broker",
]
