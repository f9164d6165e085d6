"""Widget: the size of each shipped script as the running server sends it, against its budget.

Starts `platformctl up`, GETs /widget.js and /counter.js with and without
`Accept-Encoding: gzip`, and reports the bytes on the wire.

    .venv/bin/python -m bench.widget_size
"""

from __future__ import annotations

import gzip
import sys
import urllib.request

from bench.common import fmt_int, table, usable_cores
from bench.server import running_up

# budgets from docs/embedding.md (checked by tests/browser/test_widget_assets.py)
SCRIPTS = {"/widget.js": 12 * 1024, "/counter.js": int(1.5 * 1024)}


def fetch(url: str, gzip_ok: bool) -> tuple[bytes, str]:
    headers = {"Accept-Encoding": "gzip"} if gzip_ok else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as response:
        return response.read(), response.headers.get("Content-Encoding", "")


def run() -> str:
    server_core, _ = usable_cores()
    rows = []
    with running_up(server_core) as up:
        for path, budget in SCRIPTS.items():
            plain, _ = fetch(up.url + path, False)
            wire, encoding = fetch(up.url + path, True)
            gzipped = len(wire) if encoding == "gzip" else len(gzip.compress(plain, 9))
            rows.append([f"`{path}`", fmt_int(len(plain)), fmt_int(len(wire)),
                         encoding or "none (gzip -9 computed here)", fmt_int(budget),
                         "yes" if gzipped <= budget else
                         f"**no**: {gzipped - budget:,} bytes over"])
    out = ["## Widget: shipped script sizes", ""]
    out.append("As the running server sends them (`platformctl up`), without and with "
               "`Accept-Encoding: gzip`. Budgets from [embedding](embedding.md); the time "
               "to interactive is the next section.")
    out.append("")
    out.append(table(["script", "bytes", "bytes on the wire (gzip accepted)", "encoding",
                      "budget (gzipped)", "within budget?"], rows, "lrrlrl"))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    print(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
