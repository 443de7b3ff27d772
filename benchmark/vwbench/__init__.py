"""vwbench: a benchmark and evaluation harness for visual words.

A *visual word* is a small set of learned input-embedding vectors that makes one multimodal model
generate, detect or classify a visual concept. vwbench trains such words on a source model,
carries them into a target model's embedding space with a transfer function, and measures how
well they still work there (Trabucco et al., 2024, "Understanding Visual Concepts Across Models").
"""

__version__ = "0.1.0"
