"""The type checker passes on the whole code base (``[tool.mypy]`` in pyproject.toml).

The ports are base classes with typed signatures (``gateway/ports.py``): mypy is what holds every
channel, console and caller to them between test runs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("gateway", "chatgate", "channels", "agent_console", "workers")


def test_mypy_finds_no_errors():
    done = subprocess.run([sys.executable, "-m", "mypy", *PACKAGES], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, f"mypy found errors:\n{done.stdout}{done.stderr}"
