"""The sanitisers built once in appliance/services/rendering.py clean exactly as nh3.clean does
with the same options given per call (what the code did before they were built once)."""

from __future__ import annotations

import nh3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.services import rendering

MARKUPISH = st.lists(st.sampled_from(list("<>\"'`=/&;# \n\tabcü\u00a0\x00\x07") + [
    "<b>", "</b>", "<script>", "</script>", "<style>", "<!--", "-->", "<a href='x'>",
    "<img src=x onerror=y>", "&amp;", "&lt;", "&#x3c;", "<svg><script>", "<![CDATA[",
    "<textarea>", "<noscript>", "<iframe>", "<p", "<title>", "<math>"]),
    max_size=60).map("".join)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MARKUPISH)
def test_the_prebuilt_sanitisers_clean_as_nh3_clean(value):
    assert rendering._text_cleaner.clean(value) == nh3.clean(value, tags=set(), attributes={})
    assert rendering._clean(value) == nh3.clean(
        value, tags=rendering.ALLOWED_TAGS, attributes=rendering.ALLOWED_ATTRIBUTES,
        url_schemes=rendering.URL_SCHEMES, link_rel="nofollow ugc noopener",
        strip_comments=True)
