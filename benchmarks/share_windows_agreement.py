"""How far ``score-vcf --share-windows`` scores agree with centred ones, for any model.

Scores the first N one-ALT SNVs of the GEUVADIS chr2 VCF on hg38 (the ``dense`` section of
benchmarks/score_vcf.py writes that VCF and the plain chr2 FASTA into ``--workdir``) centred and
with shared windows, and prints one JSON line: Pearson, max |diff|, the largest score, and both
times. ``--model enformer-pytorch-random`` builds a reduced-width enformer-pytorch (dim 96, 2
transformers, random weights) at Enformer's 196,608-bp geometry.

    python benchmarks/share_windows_agreement.py --model ../shared/data/pretrained/bpnet_ctcf_k562/example.final.torch
    python benchmarks/share_windows_agreement.py --model ../shared/data/pretrained/puffin/puffin.pth
    python benchmarks/share_windows_agreement.py --model enformer-pytorch-random --variants 64 --window 1024
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="anything genocl loads, or enformer-pytorch-random")
    parser.add_argument("--variants", type=int, default=256)
    parser.add_argument("--window", type=int, default=200)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/genocl-bench-score-vcf"))
    parser.add_argument("--vcf", type=Path, default=None, help="another VCF (its first --variants SNVs)")
    parser.add_argument("--fasta", type=Path, default=None, help="the genome of --vcf")
    args = parser.parse_args()

    import torch

    from genocl_plugin.models import load_model
    from genocl_plugin.scoring import score_variants
    from genocl_plugin.scoring.vcf import read_variants

    vcf, fasta = args.workdir / f"dense_{args.variants}.vcf", args.workdir / "chr2_1-2333275.fa"
    if args.vcf is not None:
        vcf, fasta = args.vcf, args.fasta
    elif not vcf.exists() or not fasta.exists():
        parser.error(f"run `python benchmarks/score_vcf.py --only dense --dense-variants {args.variants}` first "
                     f"(it writes {vcf.name} and {fasta.name} into --workdir)")
    snvs = [v for v in read_variants(vcf) if len(v.ref) == len(v.alt) == 1][: args.variants]
    variants = pd.DataFrame([(v.chrom, v.pos, v.id, v.ref, v.alt) for v in snvs],
                            columns=["chrom", "pos", "id", "ref", "alt"])
    spec = args.model
    if spec == "enformer-pytorch-random":
        from enformer_pytorch import Enformer

        torch.manual_seed(0)
        spec = str(args.workdir / "enformer_pytorch_random")
        Enformer.from_hparams(depth=2, dim=96, heads=2, dim_divisible_by=16, target_length=896, attn_dim_key=16,
                              output_heads={"human": 5313}).save_pretrained(spec, safe_serialization=False)
    model = load_model(spec)
    scores, seconds = {}, {}
    for share in (False, True):
        start = time.perf_counter()
        result = score_variants(variants, model, fasta, window=args.window, aggregate=True, share_windows=share,
                                batch_size=16)
        scores[share], seconds[share] = result.X[:, 0].copy(), time.perf_counter() - start
    centred, shared = scores[False], scores[True]
    print(json.dumps({"model": args.model, "vcf": str(vcf), "seq_len": model.seq_len, "variants": len(centred),
                      "window": args.window,
                      "pearson": float(np.corrcoef(centred, shared)[0, 1]),
                      "max_abs_diff": float(np.abs(centred - shared).max()),
                      "max_abs_score": float(np.abs(centred).max()),
                      "centred_s": seconds[False], "shared_s": seconds[True]}))


if __name__ == "__main__":
    main()
