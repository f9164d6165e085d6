"""One log format for every process: time, process name, level, logger, message."""

from __future__ import annotations

import logging
import sys


def configure_logging(level: str, process: str) -> None:
    logging.basicConfig(
        level=level.upper(), stream=sys.stderr, force=True,
        format=f"%(asctime)s {process}[%(process)d] %(levelname)s %(name)s: %(message)s",
    )
    # APScheduler logs every run at INFO; the flusher logs what matters itself.
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, logging.root.level))
