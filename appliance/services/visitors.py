"""Anonymous visitor ids: validated, and stored only as keyed per-site hashes."""

from __future__ import annotations

import functools
import hashlib
import hmac
import re

from appliance.errors import InvalidInput

VISITOR_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


def validate_visitor_id(visitor_id: str) -> str:
    if not isinstance(visitor_id, str) or not VISITOR_ID.match(visitor_id):
        raise InvalidInput("visitor must be 8 to 64 characters of A-Z, a-z, 0-9, _ and -.",
                           details={"field": "visitor"})
    return visitor_id


def visitor_hash(key: bytes, site: str, visitor_id: str) -> str:
    """A per-site keyed hash: the same reader is unlinkable across sites and to the raw id."""
    return _keyed_hash(key, site, validate_visitor_id(visitor_id))


# A request hashes its visitor twice (its rate limit, then its interaction): the second time
# is a lookup. Small, so it holds only the requests in flight; memory only.
@functools.lru_cache(maxsize=256)
def _keyed_hash(key: bytes, site: str, visitor_id: str) -> str:
    message = f"{site}\0{visitor_id}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]
