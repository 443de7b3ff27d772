"""Accuracy metrics over :class:`~vwbench.predictions.LabelPredictions`.

Both metrics score one word: the labels a model assigned to the items it saw for that word.
"""

from __future__ import annotations

from vwbench.predictions import LabelPredictions


def generation_accuracy(p: LabelPredictions) -> float:
    """Share of generated images that the judge labels as the word's target concept.

    The judge assigns each generated image to one of the dataset's concept names (prompt
    "a photo of {name}"); ``p.predicted`` holds those assignments. Every generation is meant to
    show the target, so ``p.actual`` is not consulted.

    Raises ``ValueError`` when there are no predictions (the accuracy is undefined).
    """
    if not p.predicted:
        raise ValueError(f"generation accuracy of {p.target!r} is undefined: no generated images")
    hits = sum(label == p.target for label in p.predicted)
    return hits / len(p.predicted)


def classification_accuracy(p: LabelPredictions) -> float:
    """Balanced accuracy of the binary decision "is this image the target concept?".

    ``0.5 * (TPR + TNR)``: the share of target images labelled as the target, averaged with the
    share of non-target images labelled as anything else. A non-target image labelled with the
    wrong *other* concept still counts as correct: the question is binary.

    Why balanced: a held-out set holds images of the target concept and of the dataset's 9 other
    concepts, so roughly 90% of the items are negatives. Plain accuracy would then reward a word
    that never fires (about 0.9 for free); balanced accuracy gives such a word 0.5.

    That is not the floor of a useless word, though: the word replaces the target's own prompt
    among the class names (CLIP's scoring), so target images have no name of their own to go to,
    and a word whose cosine is the same for every image can score well above 0.5 (about 0.75 at
    the best constant in a 10-class simulation; the mini board's `random` maps into mini-clip
    score 0.55 to 0.73). Read a transfer against the `random` row of its pair, the floor the
    boards show, not against 0.5.

    If one side is empty (only target or only non-target images), the other side's rate alone is
    returned. Raises ``ValueError`` when there are no items or ``predicted`` and ``actual``
    differ in length.
    """
    if len(p.predicted) != len(p.actual):
        raise ValueError(
            f"classification predictions for {p.target!r} have {len(p.predicted)} labels "
            f"but {len(p.actual)} true concepts"
        )
    if not p.actual:
        raise ValueError(f"classification accuracy of {p.target!r} is undefined: no images")

    pos_total = pos_hit = neg_total = neg_hit = 0
    for predicted, actual in zip(p.predicted, p.actual):
        if actual == p.target:
            pos_total += 1
            pos_hit += predicted == p.target
        else:
            neg_total += 1
            neg_hit += predicted != p.target

    rates = []
    if pos_total:
        rates.append(pos_hit / pos_total)
    if neg_total:
        rates.append(neg_hit / neg_total)
    return sum(rates) / len(rates)
