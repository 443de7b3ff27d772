"""Reference submission: vwbench's built-in `anchor` transfer behind the submission interface."""

from vwbench.submissions.reference import BuiltinTransfer


class Transfer(BuiltinTransfer):
    method = "anchor"
