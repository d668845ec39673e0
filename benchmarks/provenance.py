"""Which code a benchmark's numbers came from, and where its real data is."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def git_commit(root: Path = ROOT) -> str:
    """HEAD of the checkout, flagged when the code a benchmark runs has uncommitted changes."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True).stdout.strip()

    head = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--", "genocl_plugin", "cli", "benchmarks")
    return head + (" (with uncommitted changes in genocl_plugin/cli/benchmarks)" if dirty else "")


def shared_dir(arg: str | os.PathLike | None = None) -> Path:
    """The real data (../shared/data/README.md): ``--shared``, else ``$GENOCL_SHARED``, else
    ``shared/data`` beside the checkout -- never a fixed machine path."""
    return Path(arg or os.environ.get("GENOCL_SHARED") or ROOT.parent / "shared" / "data")
