"""Start-up benchmark: `genocl --help` must not pay for torch / grelu imports.

Reports the median wall time of `genocl --help` and, as the baseline measured in the same
run, of `python -c "import torch, grelu.lightning"` (what the CLI would cost if it imported
its heavy dependencies eagerly), and their ratio.

Usage: python benchmarks/startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def wall(cmd: list[str], repeats: int) -> float:
    """Median wall time of a command over ``repeats`` runs (one warm-up run first)."""
    subprocess.run(cmd, capture_output=True, check=True)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    help_time = wall([sys.executable, "-m", "genocl_cli", "--help"], args.repeats)
    heavy = wall([sys.executable, "-c", "import torch, grelu.lightning"], max(1, args.repeats // 2))
    print("| command | median wall time (s) | ratio to eager import |")
    print("|---|---|---|")
    print(f"| `genocl --help` | {help_time:.3f} | {help_time / heavy:.3f} |")
    print(f"| `import torch, grelu.lightning` (baseline) | {heavy:.3f} | 1.000 |")


if __name__ == "__main__":
    main()
