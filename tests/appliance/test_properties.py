"""Property tests (hypothesis): path normalisation and the comment sanitiser hold for any input,
and pathological inputs stay within a time budget."""

from __future__ import annotations

import re
import time
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from appliance.errors import InvalidPath
from appliance.paths import normalise_path
from appliance.services.rendering import clean_text, render_markdown
from tests.web.test_comment_xss import markup_problems

PATHISH = st.text(alphabet=st.characters(codec="utf-8"), max_size=300) | st.from_regex(
    r"(https?://[a-z.]{1,12})?(/[A-Za-z0-9%._~!$&'()*+,;=:@ -]{0,12}){0,8}/?(\?[^#]*)?(#.*)?",
    fullmatch=True)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(PATHISH, st.sampled_from([16, 64, 1024]))
def test_normalised_paths_are_canonical(raw, limit):
    try:
        path = normalise_path(raw, max_length=limit)
    except InvalidPath:
        return  # refusing is allowed; any other exception is a bug
    assert path.startswith("/") and "//" not in path
    assert "?" not in path and "#" not in path and "|" not in path
    assert len(path) <= limit and path.isascii() and path.isprintable()
    assert path == "/" or not path.endswith("/")
    # No dot segments, even percent-encoded: a path never climbs out of the site.
    segments = unquote(path).split("/")
    assert ".." not in segments and "." not in segments
    assert normalise_path(path, max_length=limit) == path  # idempotent


MARKDOWNISH = st.lists(st.sampled_from(list("<>\"'`=/:;()[]{}!#*_~-&|\\ \n\tajvsript"
                                            "ONERRORonload") + ["javascript:", "<a ", "<img ",
                                                                "<svg ", "<script>", "](",
                                                                "data:", "&#x", "\x00"]),
                       max_size=80).map("".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MARKDOWNISH)
@example('[a](b "javascript:") [c](d " onload=")')  # titles are text: found by a CI run
@example("~~~javascript:")  # a code block's language is a class name: found by a CI run
def test_rendered_comments_never_contain_executable_markup(body):
    html = render_markdown(body)
    assert markup_problems(html) == []
    # The same, as plain text checks that need no parser to be right (text may say
    # "javascript:"; no tag may).
    assert "<script" not in html.lower()
    # Attribute values are text (a link's title may say " onload=" or "javascript:"): check
    # handlers among attribute names, and javascript: where a URL is expected.
    names_only = re.sub(r'"[^"]*"', '""', html)
    assert not re.search(r"<[^>]*\son[a-z]+\s*=", names_only, re.IGNORECASE)
    assert not re.search(r"""(href|src|action)\s*=\s*["']?\s*javascript:""", html,
                         re.IGNORECASE)
    name = clean_text(body)
    assert "<" not in name and ">" not in name


@pytest.mark.parametrize("body", [
    "[" * 20000, "*" * 20000, "_a" * 10000, ">" * 20000, "- " * 10000, "`" * 20000,
    "<" * 20000, "[a](" * 5000, "&#" * 10000, "\\" * 20000, "~~" * 10000,
    "1. " * 7000, ("*a " * 3000) + ("a* " * 3000),
])
def test_pathological_comments_render_within_a_time_budget(body):
    started = time.perf_counter()
    html = render_markdown(body)
    elapsed = time.perf_counter() - started
    assert markup_problems(html) == []
    # Generous on a loaded 2-core machine: this guards against super-linear blow-ups
    # (seconds or minutes), not against a few milliseconds.
    assert elapsed < 5.0, f"{elapsed:.2f} s for {body[:20]!r}…"
