"""Reference submission: vwbench's built-in `knn` transfer behind the submission interface."""

from vwbench.submissions.reference import BuiltinTransfer


class Transfer(BuiltinTransfer):
    method = "knn"
