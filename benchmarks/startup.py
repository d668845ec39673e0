"""Start-up benchmark: `genocl --help` must not pay for torch / grelu imports.

Reports the median wall time of `genocl --help` and, as the baseline measured in the same
run, of `python -c "import torch, grelu.lightning"` (what the CLI would cost if it imported
its heavy dependencies eagerly), and their ratio. Also how fast a GPU request is refused
(`genocl update --devices gpu`, `genocl score-vcf --devices cuda` on a machine without a GPU;
issue 31), against `python -c "import torch"` measured in the same run: the refusal must come
before torch is imported.

Usage: python benchmarks/startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"


def wall(cmd: list[str], repeats: int, status: int = 0) -> float:
    """Median wall time of a command over ``repeats`` runs (one warm-up run first); it must exit ``status``."""
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != status:
            raise SystemExit(f"{' '.join(cmd)}: exit {done.returncode}, expected {status}\n{done.stderr[-2000:]}")
        if i:  # the first run warms the file cache
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    genocl = [sys.executable, "-m", "genocl_cli"]
    help_time = wall([*genocl, "--help"], args.repeats)
    heavy = wall([sys.executable, "-c", "import torch, grelu.lightning"], max(1, args.repeats // 2))
    print("| command | median wall time (s) | ratio to eager import |")
    print("|---|---|---|")
    print(f"| `genocl --help` | {help_time:.3f} | {help_time / heavy:.3f} |")
    print(f"| `import torch, grelu.lightning` (baseline) | {heavy:.3f} | 1.000 |")

    import torch  # whether this machine has a GPU (the refusals below need one missing)

    if torch.cuda.is_available():
        print("\n(a GPU is present: the GPU-refusal rows need a machine without one)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        refusals = {
            "genocl update --devices gpu --out x": [*genocl, "update", "--devices", "gpu", "--out", f"{tmp}/x"],
            "genocl score-vcf --devices cuda ...": [
                *genocl, "score-vcf", "--model", "procapnet", "--vcf", str(DATA / "gtex_eqtl_chr1_first1Mb.vcf"),
                "--fasta", str(DATA / "hg38_chr1_1-30000.fa"), "--out", f"{tmp}/s.tsv", "--devices", "cuda"],
        }
        times = {name: wall(cmd, args.repeats, status=2) for name, cmd in refusals.items()}
    torch_time = wall([sys.executable, "-c", "import torch"], args.repeats)
    print("\n| refused without a GPU | median wall time (s) | ratio to `import torch` |")
    print("|---|---|---|")
    for name, seconds in times.items():
        print(f"| `{name}` | {seconds:.3f} | {seconds / torch_time:.3f} |")
    print(f"| `python -c \"import torch\"` (baseline) | {torch_time:.3f} | 1.000 |")


if __name__ == "__main__":
    main()
