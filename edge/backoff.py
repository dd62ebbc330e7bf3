"""Jittered exponential delays between attempts to reach something that did not answer."""

import random
from collections.abc import Iterator


def backoff(
    first_s: float = 1.0, max_s: float = 30.0, rng: random.Random | None = None
) -> Iterator[float]:
    """first_s, then twice as long each time up to max_s, each delay drawn from [d/2, d]."""
    rng = rng or random.Random()
    delay_s = first_s
    while True:
        # Jitter keeps gateways that lost the same broker from all coming back at once.
        yield rng.uniform(delay_s / 2, delay_s)
        delay_s = min(delay_s * 2, max_s)
