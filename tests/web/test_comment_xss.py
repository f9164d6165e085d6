"""No comment field carries executable markup, whatever a reader sends.

Every vector of the corpus goes through the HTTP API into the body, the author name and the
author website of a new comment, and into the body of an edit. After the listener stored them,
what SQL holds and what the API serves (the POST and PATCH answers, the thread JSON) is parsed
with an HTML parser, not searched for substrings: every tag must be in the allowlist, no event
handler or style/src attribute may survive, and every link must be http, https or mailto.
Refusing a vector (400) is fine, as long as nothing of it was stored.
"""

from __future__ import annotations

import html
import re
import zlib
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest

from appliance.services.rendering import ALLOWED_ATTRIBUTES, ALLOWED_TAGS
from appliance.storage.models import Comment
from appliance.workers.listener import build_listener
from tests.web.conftest import API

COMMENTS = f"{API}/comments"
PAGE = "/xss"
SAFE_SCHEMES = {"http", "https", "mailto"}
FORBIDDEN_ATTRIBUTES = {"style", "src", "srcdoc", "formaction"}
# Browsers drop ASCII tab and newline anywhere in a URL, and C0 controls and spaces around it;
# dropping every whitespace and control character (and invisible format characters) is stricter.
URL_NOISE = re.compile(r"[\s\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
SCHEME = re.compile(r"^([a-z][a-z0-9+.\-]*):")

B64_SCRIPT = "PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=="  # <script>alert(1)</script>
B64_SVG = "PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+"  # <svg onload=alert(1)>

VECTORS = [
    # script elements
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    '<script/src="data:,alert(1)"></script>',
    "<scr<script>ipt>alert(1)</scr</script>ipt>",
    "<script>alert(String.fromCharCode(88,83,83))</script>",
    "<<script>alert(1);//<</script>",
    "</script><script>alert(1)</script>",
    '<script type="text/javascript">javascript:alert(1);</script>',
    "<script>/* never closed",
    "<ScRiPt>alert(document.cookie)</sCrIpT>",
    # event handlers, on many tags
    "<img src=x onerror=alert(1)>",
    "<IMG SRC=x OnErRoR=alert(1)>",
    '<img src="x" onerror="alert(1)"/>',
    "<img/src/onerror=alert(1)>",
    "<img src=x:alert(alt) onerror=eval(src) alt=0>",
    "<svg onload=alert(1)>",
    "<svg/onload=alert(1)//",
    "<body onload=alert(1)>",
    '<div onmouseover="alert(1)">hover</div>',
    '<a onclick="alert(1)" href="#">click</a>',
    "<input autofocus onfocus=alert(1)>",
    "<select autofocus onfocus=alert(1)></select>",
    "<textarea autofocus onfocus=alert(1)></textarea>",
    "<details open ontoggle=alert(1)>",
    "<video><source onerror=alert(1)></video>",
    "<audio src=x onerror=alert(1)>",
    "<marquee onstart=alert(1)>x</marquee>",
    "<p onpointerenter=alert(1)>x</p>",
    "<strong onmouseover=alert(1)>bold</strong>",
    '<a href="https://ok.example" onmouseover=alert(1)>ok</a>',
    "<blockquote onclick=alert(1)>q</blockquote>",
    "<code class=x onclick=alert(1)>c</code>",
    "<x-custom onclick=alert(1)>custom</x-custom>",
    "<keygen autofocus onfocus=alert(1)>",
    "<frameset onload=alert(1)>",
    "<button onclick=alert(1)>press</button>",
    # javascript:, vbscript: and data: URLs in HTML, with every disguise
    '<a href="javascript:alert(1)">x</a>',
    '<a href="JaVaScRiPt:alert(1)">x</a>',
    '<a href="  javascript:alert(1)">x</a>',
    '<a href="java\tscript:alert(1)">x</a>',
    '<a href="java&#x09;script:alert(1)">x</a>',
    '<a href="jav&#x0A;ascript:alert(1)">x</a>',
    '<a href="&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)">x</a>',
    '<a href="&#x6A;&#x61;&#x76;&#x61;&#x73;&#x63;&#x72;&#x69;&#x70;&#x74;:alert(1)">x</a>',
    '<a href="&#0000106avascript:alert(1)">x</a>',
    '<a href="javascript&colon;alert(1)">x</a>',
    "<a href=javascript&#58alert(1)>x</a>",
    '<a href="%6A%61%76%61%73%63%72%69%70%74:alert(1)">x</a>',
    '<a href="\\u006Aavascript:alert(1)">x</a>',
    '<a href="\x01javascript:alert(1)">x</a>',
    '<a href="ｊａｖａｓｃｒｉｐｔ:alert(1)">x</a>',
    '<a href="vbscript:msgbox(1)">x</a>',
    f'<a href="data:text/html;base64,{B64_SCRIPT}">x</a>',
    # Markdown links, images and autolinks
    "[x](javascript:alert(1))",
    "[x](JAVASCRIPT:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x](javascript&#58;alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](&#x6A;avascript:alert(1))",
    "[x](javascript%3Aalert(1))",
    "[x](%6Aavascript:alert(1))",
    "[x](<javascript:alert(1)>)",
    "[x]( javascript:alert(1) )",
    "[x](java\tscript:alert(1))",
    "[x](jav&#x09;ascript:alert(1))",
    "[x](jav&#10;ascript:alert(1))",
    "[x](vbscript:msgbox(1))",
    "[x](VBScript:msgbox(1))",
    f"[x](data:text/html;base64,{B64_SCRIPT})",
    f"[x](data:image/svg+xml;base64,{B64_SVG})",
    "[x](file:///etc/passwd)",
    "![x](javascript:alert(1))",
    '![x](https://evil.example/x.png" onerror="alert(1))',
    "look ![x](data:image/png;base64,iVBORw0KGgo=)",
    f"look ![x](data:image/svg+xml;base64,{B64_SVG})",
    "<javascript:alert(1)>",
    "<JAVASCRIPT:alert(1)>",
    "<vbscript:msgbox(1)>",
    "<data:text/html,<script>alert(1)</script>>",
    "[x][r]\n\n[r]: javascript:alert(1)",
    '[x][r]\n\n[r]: <javascript:alert(1)> "title"',
    "[x]\n\n[x]: data:text/html,alert(1)",
    "[x][R]\n\n[r]: vbscript:msgbox(1)",
    '[x](https://ok.example "title\\" onmouseover=\\"alert(1)")',
    "[x](https://ok.example'onmouseover='alert(1))",
    '[x](https://ok.example/"><script>alert(1)</script>)',
    "[<img src=x onerror=alert(1)>](https://ok.example)",
    "[x](https://ok.example)<img src=x onerror=alert(1)>",
    "`<script>alert(1)</script>`",
    "```html\n<script>alert(1)</script>\n```",
    '```" onclick="alert(1)\ncode\n```',
    '```x"><script>alert(1)</script>\ncode\n```',
    "    <script>alert(1)</script>",
    "> <script>alert(1)</script>",
    "* [x](javascript:alert(1))",
    "**<img src=x onerror=alert(1)>**",
    "# <script>alert(1)</script>",
    "1. <svg onload=alert(1)>",
    # SVG and MathML
    "<svg><script>alert(1)</script></svg>",
    '<svg><a xlink:href="javascript:alert(1)"><text x="20" y="20">x</text></a></svg>',
    "<svg><animate onbegin=alert(1) attributeName=x dur=1s>",
    '<svg><set attributeName="href" to="javascript:alert(1)"/></svg>',
    "<svg><foreignObject><iframe src=javascript:alert(1)></iframe></foreignObject></svg>",
    "<svg><style><img src=x onerror=alert(1)></style></svg>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    '<math href="javascript:alert(1)">CLICK</math>',
    '<math><maction actiontype="statusline" xlink:href="javascript:alert(1)">x</maction></math>',
    "<form><math><mtext></form><form><mglyph><style></math><img src onerror=alert(1)>",
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    # style and expression()
    '<div style="background:url(javascript:alert(1))">x</div>',
    '<p style="width:expression(alert(1))">x</p>',
    "<style>@import 'https://evil.example/x.css';</style>",
    '<style>body{background:url("javascript:alert(1)")}</style>',
    '<strong style="color:red">x</strong>',
    "<link rel=stylesheet href=https://evil.example/x.css>",
    # iframe, object, embed, base, meta, form and friends
    '<iframe src="javascript:alert(1)"></iframe>',
    '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
    '<object data="javascript:alert(1)"></object>',
    f'<embed src="data:image/svg+xml;base64,{B64_SVG}">',
    '<base href="javascript:alert(1)//">',
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    '<form action="javascript:alert(1)"><button>go</button></form>',
    '<form><button formaction="javascript:alert(1)">go</button></form>',
    "<isindex action=javascript:alert(1) type=image>",
    '<applet code="javascript:alert(1)"></applet>',
    '<table background="javascript:alert(1)"><tr><td>x</td></tr></table>',
    '<object type="text/x-scriptlet" data="https://evil.example/x.sct"></object>',
    # broken and unclosed markup
    "<img src=x onerror=alert(1)",
    '<a href="javascript:alert(1)',
    "<<img src=x onerror=alert(1)//<",
    '<img """><script>alert(1)</script>">',
    '<!--<img src="--><img src=x onerror=alert(1)//">',
    "<![CDATA[<script>alert(1)</script>]]>",
    '<?xml version="1.0"?><script>alert(1)</script>',
    "</p><script>alert(1)</script><p>",
    '<a href="https://ok.example"><a href="javascript:alert(1)">nested</a></a>',
    "<img src=`x` onerror=alert(1)>",
    # attribute quote breakouts
    '" onmouseover="alert(1)',
    "' onmouseover='alert(1)",
    '"><script>alert(1)</script>',
    "'><img src=x onerror=alert(1)>",
    '"autofocus onfocus=alert(1) x="',
    "`-alert(1)-`",
    # HTML entities and other encodings of markup
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "&amp;lt;script&amp;gt;alert(1)&amp;lt;/script&amp;gt;",
    "&#60;script&#62;alert(1)&#60;/script&#62;",
    "&#x3C;img src=x onerror=alert(1)&#x3E;",
    "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e",
    "%3Cscript%3Ealert(1)%3C/script%3E",
    "\uff1cscript\uff1ealert(1)\uff1c/script\uff1e",
    # null bytes
    "<scr\x00ipt>alert(1)</scr\x00ipt>",
    "<img src=x o\x00nerror=alert(1)>",
    "[x](java\x00script:alert(1))",
    "\x00<script>alert(1)</script>",
    # right-to-left and zero-width tricks
    "\u202e<script>alert(1)</script>",
    "[x](java\u200bscript:alert(1))",
    '<a href="java\u200bscript:alert(1)">x</a>',
    "\ufeff<script>alert(1)</script>",
    "[click](https://ok.example/\u202egnp.exe)",
    "\u200b\u200c\u200d<img src=x onerror=alert(1)>",
    # template injection
    "{{constructor.constructor('alert(1)')()}}",
    "{{7*7}}",
    "${alert(1)}",
    "<%= 7*7 %>",
    "{% raw %}{{x}}{% endraw %}",
    "[x](https://ok.example/{{constructor.constructor('alert(1)')()}})",
    # websites that break out of an href, or are not http(s)
    'https://ok.example/"onmouseover="alert(1)',
    "https://ok.example/'onmouseover='alert(1)",
    "https://ok.example/<script>alert(1)</script>",
    "https://ok.example/ onmouseover=alert(1)",
    "https://ok.example/`onmouseover=alert(1)`",
    "https://ok.example/\\\"onmouseover=alert(1)",
    "https://ok.example/&#x22;onmouseover=alert(1)",
    "https://ok.example/%22onmouseover=%22alert(1)",
    "javascript://ok.example/%0Aalert(1)",
    "JAVASCRIPT:alert(1)",
    " javascript:alert(1)",
    "\x01javascript:alert(1)",
    "java\tscript:alert(1)",
    "javascript\n:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "https:alert(1)",
    "http://ok.example/\x00",
    "http://ok.example\u2028/",
    "//evil.example/x",
]


# -- the checker -------------------------------------------------------------------------------

class MarkupAudit(HTMLParser):
    """Everything in an HTML string that could run script or load something."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            self.problems.append(f"tag <{tag}> is not allowed")
        allowed = ALLOWED_ATTRIBUTES.get(tag, set()) | ({"rel"} if tag == "a" else set())
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"event handler {name} on <{tag}>")
            if name in FORBIDDEN_ATTRIBUTES:
                self.problems.append(f"attribute {name} on <{tag}>")
            if name not in allowed:
                self.problems.append(f"attribute {name} not allowed on <{tag}>")
            if name == "href":
                problem = unsafe_url(value or "")
                if problem:
                    self.problems.append(problem)
        if tag == "a" and dict(attrs).get("rel") != "nofollow ugc noopener":
            self.problems.append(f"link without rel=nofollow ugc noopener: {attrs}")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag not in ALLOWED_TAGS:
            self.problems.append(f"end tag </{tag}> is not allowed")

    def handle_comment(self, data: str) -> None:
        self.problems.append(f"comment <!--{data}-->")

    def handle_decl(self, decl: str) -> None:
        self.problems.append(f"declaration <!{decl}>")

    def unknown_decl(self, data: str) -> None:
        self.problems.append(f"declaration <![{data}]>")

    def handle_pi(self, data: str) -> None:
        self.problems.append(f"processing instruction <?{data}>")


def unsafe_url(value: str) -> str | None:
    """Why an href (already HTML-unescaped by the parser) is unsafe, or None.

    A URL without a scheme is relative to the host page (or scheme-relative): not executable.
    """
    url = URL_NOISE.sub("", html.unescape(value)).lower()
    scheme = SCHEME.match(url)
    if scheme and scheme.group(1) not in SAFE_SCHEMES:
        return f"href with scheme {scheme.group(1)}: {value!r}"
    return None


def markup_problems(fragment: str) -> list[str]:
    audit = MarkupAudit()
    audit.feed(fragment)
    if audit.rawdata:  # HTMLParser holds back an unfinished tag until close()
        audit.problems.append(f"unfinished markup: {audit.rawdata!r}")
    audit.close()
    return audit.problems


def name_problems(name: str) -> list[str]:
    return [f"author_name {name!r} has markup or control characters"] if re.search(
        r"[<>\x00-\x1f\x7f]", name) else []


def website_problems(website: str) -> list[str]:
    if website == "":
        return []
    parts = urlsplit(website)
    if (parts.scheme not in ("http", "https") or not parts.hostname
            or re.search(r"[\s\x00-\x1f\x7f\"'<>`\\]", website)):
        return [f"author_website {website!r} is not a plain http(s) URL"]
    return []


@pytest.mark.parametrize(("fragment", "expected"), [
    ('<p>ok <a href="https://x.example" rel="nofollow ugc noopener">x</a></p>', []),
    ('<a href="/relative" rel="nofollow ugc noopener">x</a>', []),
    ('<a href="mailto:a@b.example" rel="nofollow ugc noopener">x</a>', []),
    ("<img src=x onerror=alert(1)>", ["tag <img>", "event handler", "attribute src"]),
    ('<a href="jav&#x09;ascript:alert(1)" rel="nofollow ugc noopener">x</a>', ["javascript"]),
    ('<a href="&#x6A;avascript:x" rel="nofollow ugc noopener">x</a>', ["javascript"]),
    ('<a href=" \x01JAVA\nSCRIPT:x" rel="nofollow ugc noopener">x</a>', ["javascript"]),
    ('<a href="java\u200bscript:x" rel="nofollow ugc noopener">x</a>', ["javascript"]),
    ('<a href="data:text/html,x" rel="nofollow ugc noopener">x</a>', ["data"]),
    ('<a href="https://x.example">x</a>', ["rel"]),
    ('<p style="x">y</p>', ["style"]),
    ('<code class="x" title="y">z</code>', ["title not allowed"]),
    ("<!-- x -->", ["comment"]),
    ('<p>x</p><a href="javascript:x"', ["unfinished"]),
    ("<svg><p>x</p></svg>", ["<svg>", "</svg>"]),
])
def test_the_checker_catches_what_it_must(fragment, expected):
    problems = " | ".join(markup_problems(fragment))
    for part in expected:
        assert part in problems, (fragment, problems)
    if not expected:
        assert problems == ""


def test_the_corpus_is_large_and_distinct():
    assert len(VECTORS) >= 100
    assert len(set(VECTORS)) == len(VECTORS), [v for v in VECTORS if VECTORS.count(v) > 1]


# -- the API -----------------------------------------------------------------------------------

def address_of(visitor: str) -> dict:
    crc = zlib.crc32(visitor.encode())
    return {"client": (f"2001:db8:{crc >> 16:x}:{crc & 0xFFFF:x}::1", 40000)}


async def submit(client, problems: list, vector: str, where: str, visitor: str,
                 **fields) -> dict | None:
    """POST a comment; None when refused (400). A served answer is checked at once."""
    response = await client.post(COMMENTS, scope_base=address_of(visitor),
                                 json={"path": PAGE, "visitor": visitor, **fields})
    answer = await response.get_json()
    if response.status_code == 400:
        assert answer["error"]["code"] == "invalid_input", (vector, answer)
        return None
    assert response.status_code == 202, (where, vector, answer)
    problems.extend(f"{where} POST html: {p}" for p in markup_problems(answer["html"]))
    return answer


async def read_all(client) -> list[dict]:
    comments, offset = [], 0
    while offset is not None:
        response = await client.get(COMMENTS, query_string={
            "path": PAGE, "limit": 500, "offset": offset})
        assert response.status_code == 200
        thread = await response.get_json()
        comments += thread["comments"]
        offset = thread["next_offset"]
    return comments


async def test_no_vector_survives_in_any_field_stored_or_served(client, redis_client, database,
                                                                settings):
    problems: list[str] = []
    accepted: dict[str, str] = {}  # comment id -> the vector it carries
    refused_bodies: set[str] = set()
    refused_websites: set[str] = set()
    edits: dict[str, tuple[str, str]] = {}  # comment id -> (the vector, the HTML answered)
    for n, vector in enumerate(VECTORS):
        visitor = f"visitor-xss-{n:04d}"
        where = f"vector {n} {vector!r}"
        # The body and the author's name.
        one = await submit(client, problems, vector, where + " body+name", visitor,
                           body=vector, author_name=vector)
        if one is None:
            refused_bodies.add(vector)
        else:
            accepted[one["id"]] = vector
        # The author's website (refusing it refuses the comment).
        two = await submit(client, problems, vector, where + " website", visitor,
                           body=f"website probe {n}", author_name=f"probe {n}",
                           author_website=vector)
        if two is None:
            refused_websites.add(vector)
        else:
            accepted[two["id"]] = vector
        # An edit of a harmless comment into the vector.
        three = await submit(client, problems, vector, where + " edit", visitor,
                             body=f"edit probe {n}")
        accepted[three["id"]] = vector
        response = await client.patch(f"{COMMENTS}/{three['id']}", json={
            "edit_token": three["edit_token"], "body": vector})
        answer = await response.get_json()
        if response.status_code == 202:
            problems.extend(f"{where} PATCH html: {p}" for p in markup_problems(answer["html"]))
            edits[three["id"]] = (vector, answer["html"])
        else:
            assert response.status_code == 400, (where, answer)
            assert answer["error"]["code"] == "invalid_input", (where, answer)

    listener = build_listener(redis_client, database, settings.comment_max_depth)
    while listener.run_once():
        pass
    assert redis_client.xlen("ov:stream:submissions:dead") == 0

    # (a) What SQL holds.
    with database.connection_context():
        rows = list(Comment.select())
    assert {row.id for row in rows} == set(accepted)  # nothing refused was stored
    for row in rows:
        where = f"stored {row.id} from {accepted[row.id]!r}"
        problems.extend(f"{where} body_html: {p}" for p in markup_problems(row.body_html))
        problems.extend(f"{where}: {p}" for p in name_problems(row.author_name))
        problems.extend(f"{where}: {p}" for p in website_problems(row.author_website))
        if row.body_markdown in refused_bodies:
            problems.append(f"{where}: a refused body was stored")
        if row.author_website and row.author_website in refused_websites:
            problems.append(f"{where}: a refused website was stored")
        if row.id in edits:
            # Stored as the server keeps bodies: NUL as U+FFFD, other control characters gone.
            expected = re.sub(r"[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]", "",
                              edits[row.id][0].replace("\x00", "\ufffd")).strip()
            if row.body_markdown != expected:
                problems.append(f"{where}: the edit was not stored")
            if row.body_html != edits[row.id][1]:
                problems.append(f"{where}: stored HTML differs from the PATCH answer")

    # (b) What the API serves.
    served = await read_all(client)
    assert {comment["id"] for comment in served} == set(accepted)
    for comment in served:
        where = f"served {comment['id']} from {accepted[comment['id']]!r}"
        problems.extend(f"{where} html: {p}" for p in markup_problems(comment["html"]))
        problems.extend(f"{where}: {p}" for p in name_problems(comment["author_name"]))
        problems.extend(f"{where}: {p}" for p in website_problems(comment["author_website"]))

    assert not problems, "\n".join(problems)
