"""Page path normalisation: one page never splits into two counters."""

from __future__ import annotations

import pytest

from appliance.errors import InvalidPath
from appliance.paths import normalise_path


@pytest.mark.parametrize(("raw", "expected"), [
    ("/post", "/post"),
    ("/post/", "/post"),
    ("post", "/post"),
    ("https://blog.example/post/?utm_source=x#comments", "/post"),
    ("http://blog.example:8080/post", "/post"),
    ("//cdn.example/post", "/post"),
    ("/post/index.html", "/post"),
    ("/post/index.htm", "/post"),
    ("/p%6Fst", "/post"),
    ("/p%6fst/", "/post"),
    ("/caf%c3%a9", "/caf%C3%A9"),
    ("/café", "/caf%C3%A9"),
    ("/a b", "/a%20b"),
    ("/a//b///c", "/a/b/c"),
    ("/a/./b/../c", "/a/c"),
    ("/../../etc", "/etc"),
    ("/", "/"),
    ("/index.html", "/"),
    ("/?page=2", "/"),
    ("/Post", "/Post"),  # case is kept: paths are case-sensitive on most servers
    ("/a|b", "/a%7Cb"),  # the storage separator never appears literally
])
def test_equivalent_paths_normalise_to_one(raw, expected):
    assert normalise_path(raw) == expected


@pytest.mark.parametrize("raw", ["", "   ", "/a\nb", "/a\x00b", "/a%0Ab", "/a%FFb",
                                 "/" + "x" * 2000, "/" + "%41" * 1100])
def test_paths_that_cannot_be_normalised_are_refused(raw):
    with pytest.raises(InvalidPath):
        normalise_path(raw, max_length=1024)


def test_normalising_twice_changes_nothing():
    for raw in ["/a b/c%2fd", "https://x.example/é/?q#f", "/x/index.html"]:
        once = normalise_path(raw)
        assert normalise_path(once) == once
