"""`.venv/bin/python -m bench` runs every benchmark and writes docs/benchmarks.md."""

import sys

from bench.run_all import main

sys.exit(main())
