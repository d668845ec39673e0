"""genocl: continual learning for genomic sequence-to-function models.

A plugin for the gReLU / Kipoi ecosystem. Heavy dependencies (torch, grelu, kipoi) are
imported inside the submodules that need them, so ``import genocl_plugin`` stays cheap.
"""

__version__ = "0.1.0"
