"""Bundled real data and mini base models (see SOURCE.md)."""
