"""Submissions from outside vwbench: linear maps, embeddings and transfer methods.

Only safetensors and YAML are read as data; submitted Python runs only in the sandbox
(:mod:`vwbench.submissions.sandbox`). ``validate(path)`` explains every problem it finds.

For making a submission: ``load_model(role, tier=...)`` loads a tier's model as ``vwbench run``
does, and ``shared_rows(source_vocab, target_vocab)`` gives the two models' rows of the tokens
both vocabularies share (what transfer methods are fitted on).
"""

from vwbench.submissions.models import load_model
from vwbench.submissions.validate import Report, validate
from vwbench.transfer.base import shared_rows

__all__ = ["Report", "load_model", "shared_rows", "validate"]
