"""Rebuild the bundled screens in genocl_plugin/bundled/ from the public source files.

Usage: python scripts/make_bundled_screens.py [SHARED_DATA_DIR]
(SHARED_DATA_DIR defaults to ../shared/data; its README names every source file.)
"""

from __future__ import annotations

import sys
from pathlib import Path

from genocl_plugin.data import screens

BUNDLED = Path(__file__).resolve().parents[1] / "genocl_plugin" / "bundled"


def main(shared: Path) -> None:
    kircher = shared / "kircher2019_satmut"
    table = kircher / "elements.tsv.gz"
    fasta = kircher / "DERIVED_element_reference_sequences_GRCh38.fa"
    for name, group in [("mpra_enhancers", screens.KIRCHER_ENHANCERS),
                        ("mpra_promoters", screens.KIRCHER_PROMOTERS)]:
        adata = screens.from_satmut(table, fasta, elements=list(group))
        adata.uns["group"] = name.split("_")[1]
        screens.write_screen(adata, BUNDLED / f"{name}.h5ad", force=True)
        print(f"{name}: {adata.n_obs} variants, {adata.obs['element'].nunique()} elements")
    crispr = shared / "engreitz_crispr" / "EPCrisprBenchmark_combined_data.training_K562.GRCh38.tsv.gz"
    adata = screens.from_crispri(crispr, sequence_source="bundled")
    screens.write_screen(adata, BUNDLED / "crispri_example.h5ad", force=True)
    print(f"crispri_example: {adata.n_obs} pairs: {list(adata.obs_names)}")
    from genocl_plugin.data import personal

    qtl = shared / "personal" / "geuvadis_qtlmap"
    adata, summary = personal.from_personal(
        qtl / "GEUVADIS_cqn.tsv", qtl / "GEUVADIS_phenotype_metadata.tsv", "bundled", 2048,
        dosages=qtl / "LCL.dose.tsv.gz", sample_map=qtl / "GEUVADIS_sample_metadata.tsv")
    screens.write_screen(adata, BUNDLED / "personal_example.h5ad", force=True)
    print("personal_example:\n" + personal.format_summary(summary))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared" / "data")
