"""Tiny random-weight models in each family's real architecture and on-disk layout, for tests and
smoke runs without network access."""
