"""Running the real ``autowarm`` CLI in a subprocess, for the end-to-end probe tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = str(Path(__file__).parent / "scripts_probe" / "train_tiny.py")


def start_probe(args: list[str], *, cwd: Path) -> subprocess.Popen[str]:
    """``python -m autowarm ARGS`` running in the background, its stderr readable line by line
    (to send it a signal at a chosen moment)."""
    return subprocess.Popen(
        [sys.executable, "-m", "autowarm", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
