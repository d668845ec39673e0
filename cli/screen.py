"""``genocl screen``: convert and validate perturbation screens."""

from __future__ import annotations

import click

from genocl_cli import params as P
from genocl_cli.main import user_errors


@click.group()
def screen() -> None:
    """Convert public screen tables to genocl's .h5ad layout, and validate screens."""


@screen.command("from-satmut")
@click.option("--table", required=True, type=click.Path(), help="Kircher 2019 elements.tsv.gz.")
@click.option("--fasta", required=True, type=click.Path(),
              help="Element reference sequences FASTA.")
@click.option("--out", required=True, type=click.Path(), help="Output .h5ad.")
@click.option("--elements", default=None,
              help="Comma-separated element names, or 'enhancers' / 'promoters'.")
@click.option("--release", default="GRCh38", show_default=True)
@click.option("--max-per-element",
              type=P.positive_int("pass a number of variants >= 1, or leave it out"),
              default=None, help="Subsample variants per element.")
@click.option("--seed", type=P.non_negative_int("pass a seed >= 0"), default=0, show_default=True)
@click.option("--force", is_flag=True, help="Replace an existing --out.")
@user_errors
def from_satmut(table, fasta, out, elements, release, max_per_element, seed, force) -> None:
    """Kircher et al. 2019 saturation mutagenesis -> MPRA screen.

    \b
    Example:
      genocl screen from-satmut --table elements.tsv.gz \\
        --fasta DERIVED_element_reference_sequences_GRCh38.fa --elements enhancers --out mpra.h5ad
    """
    from genocl_plugin import screens

    _refuse_existing(out, force)
    groups = {"enhancers": screens.KIRCHER_ENHANCERS, "promoters": screens.KIRCHER_PROMOTERS}
    names = groups.get(elements) or (elements.split(",") if elements else None)
    adata = screens.from_satmut(table, fasta, elements=names, release=release,
                                max_per_element=max_per_element, seed=seed)
    screens.write_screen(adata, out, force=force)
    n_elements = adata.obs["element"].nunique()
    click.echo(f"wrote {out}: {adata.n_obs} variants over {n_elements} elements")


@screen.command("from-crispri")
@click.option("--table", required=True, type=click.Path(), help="EPCrisprBenchmark_*.tsv.gz.")
@click.option("--fasta", default=None, type=click.Path(),
              help="hg38 FASTA (default: bundled windows).")
@click.option("--out", required=True, type=click.Path(), help="Output .h5ad.")
@click.option("--dataset", multiple=True, help="Keep only these Dataset values.")
@click.option("--force", is_flag=True, help="Replace an existing --out.")
@user_errors
def from_crispri(table, fasta, out, dataset, force) -> None:
    """EngreitzLab CRISPRi benchmark -> CRISPRi screen.

    \b
    Example:
      genocl screen from-crispri \\
        --table EPCrisprBenchmark_combined_data.training_K562.GRCh38.tsv.gz \\
        --fasta hg38.fa --out crispri.h5ad
    """
    from genocl_plugin import screens

    _refuse_existing(out, force)
    adata = screens.from_crispri(table, sequence_source=fasta or "bundled",
                                 datasets=list(dataset) or None)
    screens.write_screen(adata, out, force=force)
    click.echo(f"wrote {out}: {adata.n_obs} element-gene pairs")


@screen.command("validate")
@click.argument("path", type=click.Path())
@user_errors
def validate(path) -> None:
    """Check a screen .h5ad against genocl's layout.

    \b
    Example:
      genocl screen validate mpra.h5ad
    """
    from genocl_plugin import screens

    adata = screens.read_screen(path)
    click.echo(f"{path}: valid {adata.uns['assay']} screen with {adata.n_obs} rows")


def _refuse_existing(out, force: bool) -> None:
    """Fail before a slow conversion if ``--out`` exists and ``--force`` was not given."""
    from pathlib import Path

    from genocl_plugin.errors import input_error

    if Path(out).exists() and not force:
        raise input_error(out, "--out", "already exists", "choose another path or pass --force")
