"""Studies that measure what frozen encoders know, run in the same harness as the word tasks.

Three families, each a task family of ``tasks/studies/<family>.yaml`` (loaded by
:mod:`vwbench.registry.studies`), run by ``vwbench run --task FAMILY:ENCODER --dataset D`` and
stored as ordinary result files (``RunResult`` with its ``study`` record):

==========  =================================================================================
family      what it measures
==========  =================================================================================
``probe``   what an image embedding knows (Substance or Style, arXiv 2307.05610): linear and
            MLP probes for 31 transformations, 10 transformation groups and the class
``align``   text-to-concept (Moayeri et al., ICML 2023): a transfer method maps one encoder's
            image features into CLIP's image space; zero-shot accuracy through the map
``sae``     sparse concepts in CLIP's joint space (arXiv 2504.11695): TopK and ReLU-L1 SAEs,
            reconstruction vs sparsity, stability, modality shares, Bridge Scores
==========  =================================================================================

``STUDY_FAMILIES`` maps each family to the class that runs its tasks
(:mod:`vwbench.studies.families`), as ``"module:attribute"`` strings: importing this package
imports neither torch nor model code, so the registry and ``vwbench ls`` stay fast.
"""

from __future__ import annotations

STUDY_FAMILIES: dict[str, str] = {
    "probe": "vwbench.studies.families:ProbeStudy",
    "align": "vwbench.studies.families:AlignStudy",
    "sae": "vwbench.studies.families:SaeStudy",
}
"""Family -> its class: ``settings(values) -> dict`` and ``run(context) -> StudyOutcome``."""

PAIRED_FAMILIES: tuple[str, ...] = ("align",)
"""Families whose tasks are SOURCE->TARGET pairs of encoders (the rest take one encoder)."""


STUDY_COLUMNS: dict[str, tuple[str, ...]] = {
    "probe": (
        "transform_acc_linear", "transform_acc_mlp", "group_acc_linear", "group_acc_mlp", "class_acc_linear", "class_acc_mlp",
        "transform_acc_multitask", "group_acc_multitask", "class_acc_multitask",
    ),
    "align": ("zero_shot_acc_mapped", "zero_shot_acc_target", "linear_probe_acc_source", "map_cosine_heldout", "agreement_with_target"),
    "sae": (
        "reference/fvu", "reference/l0", "stability/seed/mean", "stability/seed/init", "stability/data/mean", "stability/chance",
        "modality/frac_image_only", "modality/frac_text_only", "modality/frac_bimodal", "bridge/top_score",
    ),
}
"""The metrics a leaderboard shows as columns for each family (its headline first among them
where it is one)."""


STUDY_INTERVALS: dict[str, str] = {
    "probe": "95% Student-t interval over the test views (views of one image are not independent, so it is narrower than an interval over images)",
    "align": "95% Student-t interval over the held-out images",
    "sae": "95% Student-t interval over the pairs of seeds compared",
}
"""What each family's ``ci95`` is an interval over (shown with its leaderboard section)."""


def study_family(family: str):
    """An instance of the class that runs ``family``'s tasks (imports its module, and with it torch)."""
    import importlib

    from vwbench.errors import UserError

    if family not in STUDY_FAMILIES:
        raise UserError(f"unknown study family {family!r} (known: {', '.join(STUDY_FAMILIES)})")
    module, _, attribute = STUDY_FAMILIES[family].partition(":")
    return getattr(importlib.import_module(module), attribute)()
