"""schemathesis against the running web process's /openapi.json: generated and mutated
requests for every route (examples, coverage, fuzzing and stateful phases), bounded in
number. No answer may be a 5xx, and every answer must match its declared schema."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from appliance.services import tokens
from appliance.services.sites import add_site
from tests.conftest import free_port, start_process, stop_process, wait_http

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


def test_no_route_answers_5xx_or_breaks_its_schema(make_settings, sqlite_url, tmp_path):
    from appliance.storage.database import open_database
    from appliance.storage.migrations import migrate

    assert SCHEMATHESIS.exists() or shutil.which("schemathesis"), \
        "schemathesis is missing: run ./install.sh --test"
    port = free_port()
    settings = make_settings(sqlite_url, bind=f"127.0.0.1:{port}")
    database = open_database(settings.effective_database_url)
    migrate(database)
    add_site(database, "fuzz", [])
    token = tokens.create_token(database, "fuzz", "admin").token
    database.close()
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        '[parameters]\nsite = "fuzz"\n\n'
        f'[headers]\nAuthorization = "Bearer {token}"\n')
    web = start_process(settings, "serve", "web", log=tmp_path / "web.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz")
        run = subprocess.run(
            [str(SCHEMATHESIS if SCHEMATHESIS.exists() else "schemathesis"),
             "--config-file", str(config), "run", f"http://127.0.0.1:{port}/openapi.json",
             "--checks", "not_a_server_error,response_schema_conformance",
             "--max-examples", "15", "--workers", "2", "--seed", "20261125",
             "--exclude-path", "/"],
            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    finally:
        stop_process(web)
    report = run.stdout[-6000:] + run.stderr[-2000:]
    assert run.returncode == 0, report
    assert " passed" in run.stdout and "failure" not in run.stdout.split("SUMMARY")[-1], report
    assert "Traceback" not in (tmp_path / "web.log").read_text()
