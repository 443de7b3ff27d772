"""The mini zoo's shared vocabulary: the procedural world's words plus common English words.

All mini models (and the user's submissions for them) share this CLIP-format BPE vocabulary, so
the least-squares transfer fits on thousands of shared rows, many more than any mini model's
embedding width, as in the paper (>40,000 rows for 512-1024 dimensions).

The English words are the first ``N_ENGLISH`` whole-word (alphabetic, 3+ letters) tokens of CLIP's
own BPE merges, in merge order (roughly by frequency). They are frozen in ``vocab/words.txt`` so
that the vocabulary can be rebuilt without the file they came from.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import re
from pathlib import Path

from vwbench.data.synth.world import CATALOG, COLOURS, TEXTURES
from vwbench.models.vocab_files import write_clip_vocabulary

VOCAB_DIR = Path(__file__).parent / "vocab"
N_ENGLISH = 4000
PROMPT_WORDS = ["a", "an", "photo", "of", "the", "and", "with", "on", "in", "small", "large", "big", "tiny", "picture", "image"]
WORLD_WORDS = sorted({*CATALOG, *COLOURS, *TEXTURES, "striped", "dotted", "checkered", "plain", "shape", "object", "background"})


def clip_english_words(n: int = N_ENGLISH) -> list[str]:
    """The first ``n`` whole words of CLIP's BPE merges (needs open_clip installed)."""
    spec = importlib.util.find_spec("open_clip")
    path = os.path.join(os.path.dirname(spec.origin), "bpe_simple_vocab_16e6.txt.gz")
    lines = gzip.open(path).read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    words = []
    for line in lines:
        a, b = line.split()
        token = a + b
        if token.endswith("</w>") and re.fullmatch(r"[a-z]{3,}", token[:-4]):
            words.append(token[:-4])
            if len(words) == n:
                break
    return words


def zoo_words() -> list[str]:
    """World words first (their ids never move when the English list changes), then English."""
    frozen = VOCAB_DIR / "words.txt"
    english = frozen.read_text().split() if frozen.exists() else clip_english_words()
    seen, words = set(), []
    for w in PROMPT_WORDS + WORLD_WORDS + english:
        if w not in seen:
            seen.add(w)
            words.append(w)
    return words


def build_zoo_vocabulary(out_dir: Path = VOCAB_DIR) -> Path:
    """(Re)write the vocabulary files; ``words.txt`` keeps the English list."""
    out_dir.mkdir(parents=True, exist_ok=True)
    words = zoo_words()
    if not (out_dir / "words.txt").exists():
        (out_dir / "words.txt").write_text("\n".join(clip_english_words()) + "\n")
    write_clip_vocabulary(words, out_dir)
    return out_dir
