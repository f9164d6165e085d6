"""Page path normalisation, so one page never splits into two counters.

`https://blog.example/Post/?utm=x#c`, `/Post`, `/Post/index.html` and `/P%6fst/` are one page:
`/Post`. Case is kept (paths are case-sensitive on most servers).
"""

from __future__ import annotations

import posixpath
from urllib.parse import quote, unquote, urlsplit

from appliance.errors import InvalidPath

# RFC 3986 characters that may stay literal in a path; everything else is percent-encoded.
_PATH_SAFE = "/!$&'()*+,;=:@-._~"
_INDEX_FILES = ("index.html", "index.htm")


def normalise_path(raw: str, max_length: int = 1024) -> str:
    """Return the canonical form of a page path or URL; raise InvalidPath if there is none."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidPath("The page path is empty.")
    if len(raw) > max_length * 4:
        raise InvalidPath(f"The page path is longer than {max_length} characters.")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in raw):
        raise InvalidPath("The page path contains control characters.")
    text = raw.strip()
    if "://" in text or text.startswith("//"):
        try:
            text = urlsplit(text).path
        except ValueError as exc:
            raise InvalidPath(f"The page URL cannot be parsed: {exc}") from None
    text = text.split("#", 1)[0].split("?", 1)[0]
    try:
        decoded = unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise InvalidPath("The page path has percent-encoding that is not UTF-8.") from None
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in decoded):
        raise InvalidPath("The page path contains encoded control characters.")
    path = posixpath.normpath("/" + decoded.lstrip("/"))
    if path.startswith("//"):  # normpath keeps a leading double slash (POSIX rule)
        path = "/" + path.lstrip("/")
    for index in _INDEX_FILES:
        if path.endswith("/" + index):
            path = path[: -len(index)]
    path = path.rstrip("/") or "/"
    canonical = quote(path, safe=_PATH_SAFE)
    if len(canonical) > max_length:
        raise InvalidPath(f"The page path is longer than {max_length} characters.")
    return canonical
