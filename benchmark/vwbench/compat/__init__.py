"""Compatibility shims for the environments vwbench runs in."""
