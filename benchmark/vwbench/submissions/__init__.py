"""Submissions from outside vwbench: linear maps, embeddings and transfer methods.

Only safetensors and YAML are read as data; submitted Python runs only in the sandbox
(:mod:`vwbench.submissions.sandbox`). ``validate(path)`` explains every problem it finds.
"""

from vwbench.submissions.validate import Report, validate

__all__ = ["Report", "validate"]
