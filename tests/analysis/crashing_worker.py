"""A real analysis worker that misbehaves on chosen files, to test what the server does about it.

Used as `command_prefix=[python, this_file, MODE, "--"]`: the real worker runs in this process,
except that analysing a file whose name contains "boom" aborts the process (MODE=crash) or hangs
(MODE=hang). Everything else (confinement, parsing, the event stream) is the production code.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from handoff.analysis import engine, worker

MODE = sys.argv[1]
_real = engine.analyse_bytes


def _misbehaving(display: str, *args: Any, **kwargs: Any) -> Any:
    if "boom" in display:
        if MODE == "crash":
            os.abort()
        time.sleep(3600)
    return _real(display, *args, **kwargs)


engine.analyse_bytes = _misbehaving  # type: ignore[assignment]
sys.exit(worker.main())
