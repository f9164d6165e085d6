"""The widget as a guest on someone else's page: keyboard-only use, an axe-core scan, hostile
host CSS, no globals, no cookies, no third-party requests, languages and themes; and the
counter script's single batch request on an index page."""

from __future__ import annotations

import asyncio
import re

import httpx
from playwright.async_api import expect

from tests.browser.conftest import axe_source, open_page, widget_page

# The element that has focus, looking through shadow roots.
DEEP_FOCUS = """() => {
  let e = document.activeElement;
  while (e && e.shadowRoot && e.shadowRoot.activeElement) e = e.shadowRoot.activeElement;
  return e;
}"""


async def tab_to(page, description: str, matches: str, limit: int = 60,
                 key: str = "Tab") -> None:
    """Press Tab (or `key`) until the focused element satisfies the JS predicate
    `matches(e)`, and check that focus is visible on it."""
    for _ in range(limit):
        await page.keyboard.press(key)
        found = await page.evaluate(f"""() => {{
          const e = ({DEEP_FOCUS})();
          if (!e || !({matches})(e)) return null;
          const style = getComputedStyle(e);
          return {{outline: style.outlineStyle, width: parseFloat(style.outlineWidth)}};
        }}""")
        if found:
            assert found["outline"] != "none" and found["width"] >= 2, (description, found)
            return
    raise AssertionError(f"Tab never reached {description}")


def has_text(text: str) -> str:
    return f"e => e.textContent.trim() === {text!r}"


async def test_every_control_works_from_the_keyboard(ovation, static_site, new_context):
    url = widget_page(static_site, "keyboard", "/posts/keyboard/")
    page = await open_page(await new_context(), url)
    widget = page.locator("ovation-widget")

    await tab_to(page, "the like button", "e => e.dataset.reaction === 'like'")
    await page.keyboard.press("Space")
    await expect(widget.locator("button[data-reaction=like]")).to_have_attribute(
        "aria-pressed", "true")
    await tab_to(page, "the applause button", "e => e.dataset.reaction === 'applause'")
    for _ in range(3):
        await page.keyboard.press("Enter")
    await expect(widget.locator("button[data-reaction=applause] .you")).to_have_text("you: 3/12")

    await tab_to(page, "the sort order", "e => e.tagName === 'SELECT'")
    await tab_to(page, "the comment box", "e => e.tagName === 'TEXTAREA'")
    await page.keyboard.type("Typed with the *keyboard*")
    await page.keyboard.press("Control+Enter")
    comment = widget.locator("li.c").first
    await expect(comment.locator(".body em")).to_have_text("keyboard")

    await tab_to(page, "Helpful", "e => e.dataset.vote === 'up'")
    await page.keyboard.press("Enter")
    await expect(comment.locator("[data-vote=up]")).to_have_attribute("aria-pressed", "true")
    await tab_to(page, "Reply", has_text("Reply"))
    await page.keyboard.press("Enter")
    # Keys go to whatever has focus: wait for the reply box before typing (a loaded machine
    # may take a moment to open the form).
    await expect(widget.locator("li.c textarea").first).to_be_focused()
    await page.keyboard.type("And a reply")
    await page.keyboard.press("Escape")  # closes the form, focus goes back to the comment
    await expect(comment).to_be_focused()
    await tab_to(page, "Reply", has_text("Reply"))
    await page.keyboard.press("Enter")
    await expect(widget.locator("li.c textarea").first).to_be_focused()
    await page.keyboard.type("A reply, sent")
    await tab_to(page, "the reply's Post comment button", "e => e.closest('li') && "
                 "e.textContent === 'Post comment'")
    await page.keyboard.press("Enter")
    await expect(widget.locator("li.c").nth(1)).to_contain_text("A reply, sent")
    await expect(widget.locator("li.c").nth(1)).to_be_focused()

    first_comment = "e.closest('li') && !e.closest('li').previousElementSibling"
    await tab_to(page, "Edit", f"e => {first_comment} && e.textContent === 'Edit'",
                 key="Shift+Tab")  # back up into the first comment
    await page.keyboard.press("Enter")
    await page.keyboard.press("Control+A")
    await page.keyboard.type("Changed from the keyboard")
    await tab_to(page, "Save", has_text("Save"))
    await page.keyboard.press("Enter")
    await expect(comment.locator(".body")).to_have_text("Changed from the keyboard")
    await tab_to(page, "Delete", f"e => {first_comment} && e.textContent === 'Delete'")
    await page.keyboard.press("Enter")
    await page.keyboard.press("Enter")  # "Really delete?" keeps the focus
    await expect(comment.locator(".body")).to_have_text("This comment was deleted.")


async def focused_text(page) -> str:
    return await page.evaluate(f"() => ({DEEP_FOCUS})().textContent.trim()")


async def test_a_live_update_of_a_comment_keeps_the_keyboard_focus(
        ovation, static_site, new_context):
    """A comment re-rendered by a live update (here its author's edit from elsewhere) keeps
    the reader's place: the open reply box with its text, and a pending "Really delete?"."""
    url = widget_page(static_site, "refocus", "/posts/refocus/")
    page = await open_page(await new_context(), url)
    widget = page.locator("ovation-widget")
    await widget.locator("textarea").first.fill("Before")
    await widget.get_by_role("button", name="Post comment").click()
    comment = widget.locator("li.c").first
    await expect(comment.locator(".body")).to_have_text("Before")
    own = await page.evaluate("() => JSON.parse(localStorage.getItem('ovation.mine'))")
    [(comment_id, token)] = [(key, value["t"]) for key, value in own.items()]

    async def edit_elsewhere(body: str) -> None:
        async with httpx.AsyncClient() as http:
            response = await http.patch(ovation.api(f"/comments/{comment_id}"),
                                        json={"edit_token": token, "body": body})
            assert response.status_code == 202, response.text
        await expect(comment.locator(".body")).to_have_text(body)  # pushed and re-rendered

    await comment.get_by_role("button", name="Reply").click()
    reply_box = comment.locator("textarea")
    await expect(reply_box).to_be_focused()
    await page.keyboard.type("Half a reply")
    await edit_elsewhere("Edited once")
    await expect(reply_box).to_be_focused()
    await page.keyboard.type(", then the rest")
    await expect(reply_box).to_have_value("Half a reply, then the rest")
    await page.keyboard.press("Escape")

    await comment.get_by_role("button", name="Delete").focus()
    await page.keyboard.press("Enter")
    assert await focused_text(page) == "Really delete?"
    await edit_elsewhere("Edited twice")
    assert await focused_text(page) == "Really delete?"
    await page.keyboard.press("Enter")
    await expect(comment.locator(".body")).to_have_text("This comment was deleted.")


async def test_no_serious_accessibility_violations_in_light_and_dark(
        ovation, static_site, new_context):
    page_url = widget_page(static_site, "axe", "/posts/axe/")
    httpx.post(ovation.api("/comments"), json={
        "path": "/posts/axe/", "body": "A *first* comment with a [link](https://example.org)",
        "visitor": "visitor-axe-1", "author_name": "Ann"}).raise_for_status()
    axe = axe_source()
    for scheme in ("light", "dark"):
        page = await open_page(await new_context(color_scheme=scheme), page_url)
        widget = page.locator("ovation-widget")
        await expect(widget.locator("li.c")).to_have_count(1)
        await widget.get_by_role("button", name="Reply").click()  # the reply form too
        await widget.get_by_role("button", name="Post comment").first.click()  # an error shown
        await page.add_script_tag(content=axe)
        result = await page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
        serious = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]])
                   for v in result["violations"] if v["impact"] in ("serious", "critical")]
        assert serious == [], (scheme, serious)


HOSTILE_CSS = """<style>
* { all: unset !important; }
html, body, div, span, p, ol, li, h2, form, label, button, input, textarea, select, a,
ovation-widget { display: block !important; margin: 40px !important; padding: 30px !important;
  font: italic 31px/3 "Comic Sans MS", cursive !important; color: #f0f !important;
  background: #0f0 !important; border: 5px dashed red !important;
  text-transform: uppercase !important; letter-spacing: 4px !important;
  box-sizing: content-box !important; visibility: visible !important; }
ovation-widget { display: inline !important; width: 100px !important; --bg: red; --fg: red;
  --accent: red; --line: red; }
.ov, .rx, .c, button { background: red !important; color: red !important; }
</style>"""

STYLE_SNAPSHOT = """() => {
  const host = document.querySelector('ovation-widget');
  const props = ['display', 'fontFamily', 'fontSize', 'fontStyle', 'lineHeight', 'color',
    'backgroundColor', 'marginTop', 'paddingTop', 'borderTopWidth', 'borderTopStyle',
    'textTransform', 'letterSpacing', 'boxSizing'];
  const pick = e => { const s = getComputedStyle(e); return props.map(p => s[p]).join('|'); };
  return [pick(host), ...[...host.shadowRoot.querySelectorAll('*:not(style)')].map(
    e => e.tagName + '.' + e.className + ' ' + pick(e))];
}"""


async def test_host_css_cannot_restyle_it_and_it_leaves_no_trace(ovation, static_site, new_context):
    body = '<ovation-widget path="/posts/guest/"></ovation-widget>'
    baseline = static_site.page("guest-baseline", body, script="")
    calm = static_site.page("guest-calm", body)
    hostile = static_site.page("guest-hostile", body, head=HOSTILE_CSS)
    context = await new_context()
    origins: set[str] = set()
    context.on("request", lambda request: origins.add(re.match(r"\w+://[^/]+", request.url)[0]))

    page = await context.new_page()
    page.on("websocket", lambda socket: origins.add(re.match(r"\w+://[^/]+", socket.url)[0]))
    await page.goto(baseline)
    globals_before = set(await page.evaluate("() => Object.getOwnPropertyNames(window)"))
    elements_before = await page.evaluate("() => document.querySelectorAll('*').length")
    await page.goto(calm)
    await page.locator("ovation-widget[data-state=live]").wait_for()
    calm_styles = await page.evaluate(STYLE_SNAPSHOT)
    globals_after = set(await page.evaluate("() => Object.getOwnPropertyNames(window)"))
    assert globals_after - globals_before == set()
    assert await page.evaluate("() => !!customElements.get('ovation-widget')")
    # One more element, the script tag itself; no style sheet or element outside the widget.
    assert await page.evaluate("() => document.querySelectorAll('*').length") == \
        elements_before + 1
    assert await page.evaluate("() => document.styleSheets.length") == 0
    assert await page.evaluate("() => document.cookie") == ""

    await page.goto(hostile)
    await page.locator("ovation-widget[data-state=live]").wait_for()
    assert await page.evaluate(STYLE_SNAPSHOT) == calm_styles
    assert await context.cookies() == []
    assert origins == {static_site.url, ovation.url, ovation.url.replace("http", "ws")}


async def test_it_works_under_a_strict_content_security_policy(ovation, static_site, new_context):
    ws = ovation.url.replace("http", "ws")
    policy = (f"default-src 'none'; script-src {ovation.url}; connect-src {ovation.url} {ws}; "
              "style-src 'none'; img-src 'none'")
    url = static_site.page(
        "csp", '<ovation-widget path="/posts/csp/"></ovation-widget>',
        head=f'<meta http-equiv="Content-Security-Policy" content="{policy}">')
    page = await open_page(await new_context(), url)
    widget = page.locator("ovation-widget")
    assert await widget.locator(".ov").evaluate(
        "e => getComputedStyle(e).backgroundColor") == "rgb(255, 255, 255)"  # styled
    await widget.locator("button[data-reaction=like]").click()
    await expect(widget.locator("button[data-reaction=like] .n")).to_have_text("1")


async def test_a_page_on_an_origin_the_site_does_not_allow_is_refused(
        ovation, static_site, new_context):
    """The same static page under another origin (localhost, not 127.0.0.1): the site does not
    allow it, so the widget is told no and nothing is recorded, not even the view."""
    url = widget_page(static_site, "foreign", "/posts/foreign/").replace("127.0.0.1", "localhost")
    page = await (await new_context()).new_page()
    await page.goto(url)
    widget = page.locator("ovation-widget")
    await expect(widget.locator(".note")).to_be_visible()  # the refusal, in words
    await expect(widget.locator("button[data-reaction]")).to_have_count(0)
    assert ovation.totals("/posts/foreign/")["totals"]["view"] == 0


async def test_languages_and_themes(ovation, static_site, new_context):
    german = static_site.page("german", '<ovation-widget path="/posts/lang/"></ovation-widget>',
                              lang="de-AT")
    french = static_site.page("french", '<ovation-widget path="/posts/lang/" lang="fr" '
                                        'theme="dark"></ovation-widget>')
    page = await open_page(await new_context(), german)
    widget = page.locator("ovation-widget")
    await expect(widget.get_by_role("button", name="Kommentar senden")).to_be_visible()
    await expect(widget.locator("h2")).to_have_text("0 Kommentare")
    await expect(widget.get_by_role("button", name="Gefällt mir 0")).to_be_visible()
    light = await widget.locator(".ov").evaluate("e => getComputedStyle(e).backgroundColor")

    page = await open_page(await new_context(color_scheme="light"), french)
    widget = page.locator("ovation-widget")
    await expect(widget.get_by_role("button", name="Publier")).to_be_visible()
    await expect(widget.locator("h2")).to_have_text("0 commentaire")
    dark = await widget.locator(".ov").evaluate("e => getComputedStyle(e).backgroundColor")
    assert (light, dark) == ("rgb(255, 255, 255)", "rgb(22, 24, 29)")

    auto = static_site.page("auto", '<ovation-widget path="/posts/lang/" '
                                    'style="--ovation-accent: rgb(0, 90, 0)"></ovation-widget>')
    page = await open_page(await new_context(color_scheme="dark"), auto)
    widget = page.locator("ovation-widget")
    assert await widget.locator(".ov").evaluate(
        "e => getComputedStyle(e).backgroundColor") == "rgb(22, 24, 29)"
    assert await widget.locator("button.go").evaluate(
        "e => getComputedStyle(e).backgroundColor") == "rgb(0, 90, 0)"


async def test_other_languages_load_their_words_only_where_needed(ovation, static_site,
                                                                  new_context):
    """/widget.js carries English: a page in English fetches no language file, a German page
    /widget.de.json from the widget's own origin, and where that cannot come the widget speaks
    English. The view goes as text/plain, a CORS simple request: no preflight before it."""
    body = '<ovation-widget path="/posts/words/"></ovation-widget>'
    english = static_site.page("words-en", body)
    german = static_site.page("words-de", body, lang="de")
    context = await new_context()
    requests = []
    context.on("request", lambda request: requests.append(request))

    await open_page(context, english)
    assert [r.url for r in requests if re.search(r"/widget\.\w+\.json", r.url)] == []
    views = [r for r in requests if r.url.endswith("/interactions")]
    assert [r.method for r in views] == ["POST"]
    assert views[0].headers["content-type"].startswith("text/plain")

    requests.clear()
    page = await open_page(context, german)
    await expect(page.locator("ovation-widget").get_by_role(
        "button", name="Kommentar senden")).to_be_visible()
    assert [r.url for r in requests if re.search(r"/widget\.\w+\.json", r.url)] == [
        f"{ovation.url}/widget.de.json"]

    offline = await new_context()
    await offline.route("**/widget.de.json", lambda route: route.abort())
    page = await open_page(offline, german)
    widget = page.locator("ovation-widget")
    await expect(widget.get_by_role("button", name="Post comment")).to_be_visible()
    await expect(widget.locator("h2")).to_have_text("0 comments")


async def test_the_counter_script_fills_an_index_page_with_one_request(
        ovation, static_site, new_context):
    posts = ["/posts/index-a/", "/posts/index-b/", "/posts/index-c/"]
    async with httpx.AsyncClient() as http:
        for n, path in enumerate(posts):
            for visitor in range(n + 1):
                response = await http.post(ovation.api("/interactions"), json={
                    "path": path, "reaction": "like", "visitor": f"visitor-index-{visitor}"})
                assert response.status_code == 200
        await http.post(ovation.api("/interactions"), json={
            "path": posts[2], "reaction": "applause", "amount": 7, "visitor": "visitor-index-0"})
        await http.post(ovation.api("/comments"), json={
            "path": posts[1], "body": "Counted", "visitor": "visitor-index-0"})
    items = "".join(
        f'<li data-ovation-path="{path}"><a href="#">{path}</a> '
        f'<span data-ovation-count="like">-</span> likes, '
        f'<span data-ovation-count="applause">-</span> claps, '
        f'<span data-ovation-count="comments">-</span> comments</li>' for path in posts)
    url = static_site.page("index", f"<ol>{items}</ol>", script="counter.js")
    for _ in range(50):  # the listener stores the comment moments later
        if ovation.totals(posts[1])["comments"] == 1:
            break
        await asyncio.sleep(0.1)
    page = await (await new_context()).new_page()
    batches = []
    page.on("request", lambda request: "/totals" in request.url and batches.append(request.url))
    await page.goto(url)
    rows = page.locator("li")
    await expect(rows.nth(0)).to_have_text(f"{posts[0]} 1 likes, 0 claps, 0 comments")
    await expect(rows.nth(1)).to_have_text(f"{posts[1]} 2 likes, 0 claps, 1 comments")
    await expect(rows.nth(2)).to_have_text(f"{posts[2]} 3 likes, 7 claps, 0 comments")
    assert batches == [ovation.api("/totals/batch")]


async def test_no_subscription_form_where_no_e_mail_is_sent(ovation, static_site, new_context):
    """These servers have no SMTP settings: the site configuration says so, and the widget
    offers no subscription whose confirmation e-mail could never arrive."""
    assert httpx.get(ovation.api("/config"), timeout=10).json()["email"] is False
    page = await open_page(await new_context(), widget_page(static_site, "no-mail", "/posts/nm/"))
    widget = page.locator("ovation-widget")
    await expect(widget.locator("button[data-reaction=like]")).to_be_visible()  # config read
    await expect(widget.locator("form.sub")).to_be_hidden()
    # Nor a reply notification by e-mail: the comment form's opt-in is not shown either.
    await expect(widget.get_by_label("Your comment")).to_be_visible()
    await expect(widget.get_by_text("E-mail me replies")).to_be_hidden()
