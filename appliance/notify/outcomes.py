"""How a channel says a delivery did not happen."""

from __future__ import annotations


class DeliveryFailed(Exception):
    """The attempt failed. Transient failures are retried with backoff; permanent ones (a
    refused URL, an address the server rejects for good) go straight to the dead letters."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class NothingToDeliver(Exception):
    """The delivery is moot: the recipient unsubscribed, the webhook was removed."""
