"""`platformctl plugins list` and `site set --reactions/--choices`, with the bundled plugins and
the example third-party package installed by pip (plugins/examples/ovation-bookmark), run as
real processes on real Redis and SQLite/PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from appliance.storage.site_store import get_site
from tests.conftest import REPO, free_port, start_process, stop_process, wait_http


@pytest.fixture
def env(tmp_path, redis_url, database_url, database) -> dict[str, str]:
    return {"OVATION_DATA_DIR": str(tmp_path / "data"), "OVATION_REDIS_URL": redis_url,
            "OVATION_DATABASE_URL": database_url, "OVATION_SECRET_KEY": "k", "COLUMNS": "200"}


def platformctl(env: dict[str, str], *args: str, plugin_dir=None) -> subprocess.CompletedProcess:
    import os

    full = {**os.environ, **env}
    if plugin_dir is not None:
        full["PYTHONPATH"] = str(plugin_dir)
    return subprocess.run([sys.executable, "-m", "cli", *args], env=full, cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_sites_choose_their_types_and_choices(env, database):
    assert platformctl(env, "site", "add", "blog").returncode == 0
    done = platformctl(env, "site", "set", "blog", "--reactions", "view,like,emoji,stars",
                       "--choices", "emoji=heart,tada")
    assert done.returncode == 0, done.stderr
    assert "reactions: view, like, emoji (heart tada), stars." in done.stdout
    site = get_site(database, "blog")
    assert site.reactions == ("view", "like", "emoji", "stars")
    assert site.reaction_options == {"emoji": {"choices": ["heart", "tada"]}}
    reset = platformctl(env, "site", "set", "blog", "--reactions", "default",
                        "--choices", "emoji=default")
    assert reset.returncode == 0 and "reactions: defaults." in reset.stdout
    site = get_site(database, "blog")
    assert site.reactions is None and site.reaction_options == {}


MISTAKES = [
    (["--reactions", "like,polls"], "Unknown reaction type 'polls'; the loaded types are: "),
    (["--reactions", ","], "Name at least one reaction type"),
    (["--choices", "stars=1"], "stars is a score type; only choice types have choices."),
    (["--choices", "emoji=heart,nope"], "not nope"),
    (["--choices", "emoji"], "write TYPE=KEY,KEY"),
]


def test_mistakes_are_one_line_and_change_nothing(env, database):
    assert platformctl(env, "site", "add", "blog").returncode == 0
    for args, message in MISTAKES:
        result = platformctl(env, "site", "set", "blog", *args)
        assert result.returncode != 0, args
        assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) <= 2  # one message, maybe wrapped
    assert get_site(database, "blog").reactions is None


def test_plugins_list_shows_bundled_and_pip_installed_plugins(env, database, bookmark_plugin_dir):
    assert platformctl(env, "site", "add", "blog").returncode == 0
    chosen = platformctl(env, "site", "set", "blog", "--reactions", "like,bookmark",
                         plugin_dir=bookmark_plugin_dir)
    assert chosen.returncode == 0, chosen.stderr
    listed = platformctl(env, "plugins", "list", "--json", plugin_dir=bookmark_plugin_dir)
    assert listed.returncode == 0, listed.stderr
    rows = {row["plugin"]: row for row in json.loads(listed.stdout)}
    assert set(rows) == {"view", "like", "applause", "emoji", "stars", "bookmark"}
    bookmark = rows["bookmark"]
    assert (bookmark["package"], bookmark["version"], bookmark["kind"], bookmark["status"]) == (
        "ovation-bookmark", "1.0.0", "toggle", "loaded")
    assert bookmark["sites"] == ["blog"] and bookmark["hook_errors"] == 0
    assert rows["like"]["sites"] == ["blog"] and rows["applause"]["sites"] == []
    assert rows["emoji"]["package"] == "ovation" and rows["stars"]["kind"] == "score"

    # Without the package the site keeps its choice; the list says the type is missing.
    table = platformctl(env, "plugins", "list")
    assert table.returncode == 0 and "bookmark" not in table.stdout.split("wanted by")[0]
    rows = {row["plugin"]: row for row in json.loads(
        platformctl(env, "plugins", "list", "--json").stdout)}
    assert rows["like"]["sites"] == ["blog"] and "bookmark" not in rows


def test_the_allowlist_disables_and_a_missing_name_stops(env, database, bookmark_plugin_dir):
    allow = {**env, "OVATION_PLUGINS": "view,like,bookmark"}
    rows = {row["plugin"]: row["status"] for row in json.loads(
        platformctl(allow, "plugins", "list", "--json", plugin_dir=bookmark_plugin_dir).stdout)}
    assert rows == {"view": "loaded", "like": "loaded", "bookmark": "loaded",
                    "applause": "disabled", "emoji": "disabled", "stars": "disabled"}
    missing = platformctl(allow, "plugins", "list")  # bookmark is not installed here
    assert missing.returncode == 2
    assert "names bookmark, which no installed package registers" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_the_external_plugin_is_served_with_its_hooks(env, database, settings,
                                                      bookmark_plugin_dir, tmp_path):
    assert platformctl(env, "site", "add", "blog").returncode == 0
    assert platformctl(env, "site", "set", "blog", "--reactions", "like,bookmark",
                       plugin_dir=bookmark_plugin_dir).returncode == 0
    port = free_port()
    settings = settings.model_copy(update={"bind": f"127.0.0.1:{port}"})
    web = start_process(settings, "serve", "web", log=tmp_path / "web.log",
                        extra_env={"PYTHONPATH": str(bookmark_plugin_dir)})
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/readyz")
        api = f"{url}/api/v1/sites/blog"
        config = httpx.get(f"{api}/config").json()
        bookmark = config["reactions"][1]
        assert (bookmark["name"], bookmark["kind"]) == ("bookmark", "toggle")
        assert bookmark["icon"].startswith("<svg")
        saved = httpx.post(f"{api}/interactions", json={
            "path": "/posts/one/", "reaction": "bookmark", "visitor": "visitor-aaaa"})
        assert saved.status_code == 200, saved.text
        assert saved.json()["totals"] == {"like": 0, "bookmark": 1}
        refused = httpx.post(f"{api}/interactions", json={
            "path": "/about/", "reaction": "bookmark", "visitor": "visitor-aaaa"})
        assert refused.status_code == 400
        assert refused.json()["error"] == {"code": "reaction_rejected",
                                           "message": "Only posts can be bookmarked.",
                                           "details": {"field": "reaction"}}
    finally:
        stop_process(web)


def broken_package(directory) -> None:
    """An installed distribution (as pip leaves it: a module and its dist-info) whose plugin
    factory raises, and one whose module cannot even be imported."""
    (directory / "broken_plugin.py").write_text(
        "def factory(context):\n    raise RuntimeError('the plugin is broken')\n")
    for name, target in (("broken", "broken_plugin:factory"),
                         ("missing", "no_such_module:factory")):
        info = directory / f"ovation_{name}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: ovation-{name}\n"
                                       "Version: 0.1\n")
        (info / "entry_points.txt").write_text(f"[ovation.reactions]\n{name} = {target}\n")


def test_failing_plugins_are_listed_and_flagged_by_doctor_while_others_work(env, database,
                                                                           tmp_path):
    packages = tmp_path / "packages"
    packages.mkdir()
    broken_package(packages)
    rows = {row["plugin"]: row for row in json.loads(
        platformctl(env, "plugins", "list", "--json", plugin_dir=packages).stdout)}
    assert rows["broken"]["status"] == "failed"
    assert rows["broken"]["error"] == "RuntimeError: the plugin is broken"
    assert rows["missing"]["status"] == "failed" and "no_such_module" in rows["missing"]["error"]
    assert all(rows[name]["status"] == "loaded" for name in ("view", "like", "stars"))
    doctor = platformctl(env, "doctor", plugin_dir=packages)
    assert "broken (ovation-broken 0.1) fails to load: RuntimeError: the plugin is broken" \
        in doctor.stdout
    healthy = platformctl(env, "doctor")
    assert "reaction type(s) load: view, like, applause, emoji, stars" in healthy.stdout
