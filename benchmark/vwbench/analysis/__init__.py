"""Analyses of trained words: the delta sweep's table and plot, nearest vocabulary words, and the
text encoder's layers (truncated generation, t-SNE of pooled activations)."""
