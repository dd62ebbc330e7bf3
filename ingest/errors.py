"""The errors of ingest.

Exceptions::

    RuntimeError
     └── IngestError      ingest cannot do what it is configured to; the text says why
"""

from __future__ import annotations


class IngestError(RuntimeError):
    """Ingest cannot do what it is configured to (the broker refuses its subscription)."""
