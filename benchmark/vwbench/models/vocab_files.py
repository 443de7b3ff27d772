"""Write a CLIP-format BPE vocabulary (``vocab.json`` + ``merges.txt`` + gzip for open_clip).

Both transformers' ``CLIPTokenizer`` and open_clip's ``SimpleTokenizer`` load the result and give
the same ids, because the id order follows open_clip's rule: the 256 byte symbols, the same with
``</w>``, one entry per merge in merge order, then the start and end tokens.

Each listed word becomes a single token. Merges are added word by word: the word is first
segmented with the merges so far, then new merges join its pieces left to right. New merges rank
after all earlier ones, so the words already added keep their single-token segmentation.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from pathlib import Path

from vwbench.results.atomic import atomic_write_bytes


def bytes_to_unicode() -> dict[int, str]:
    """The byte -> printable-character table of GPT-2/CLIP BPE."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def _segment(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    parts = list(word[:-1]) + [word[-1] + "</w>"]
    while len(parts) > 1:
        pairs = [(ranks.get((a, b), 1 << 60), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
        best, i = min(pairs)
        if best == 1 << 60:
            break
        first, second = parts[i], parts[i + 1]
        merged, j = [], 0
        while j < len(parts):
            if j < len(parts) - 1 and parts[j] == first and parts[j + 1] == second:
                merged.append(first + second)
                j += 2
            else:
                merged.append(parts[j])
                j += 1
        parts = merged
    return parts


def build_merges(words: Iterable[str]) -> list[tuple[str, str]]:
    """Merges that make every word (lowercase letters) a single token."""
    merges: list[tuple[str, str]] = []
    ranks: dict[tuple[str, str], int] = {}
    seen: set[str] = set()
    for word in words:
        if not word.isalpha() or not word.isascii() or word != word.lower():
            raise ValueError(f"vocabulary word {word!r}: only lowercase ascii letters are supported")
        if word in seen or len(word) < 2:
            continue
        seen.add(word)
        parts = _segment(word, ranks)
        while len(parts) > 1:
            pair = (parts[0], parts[1])
            if pair not in ranks:
                ranks[pair] = len(merges)
                merges.append(pair)
            parts = [parts[0] + parts[1]] + parts[2:]
    return merges


def vocab_from_merges(merges: list[tuple[str, str]]) -> dict[str, int]:
    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return {token: i for i, token in enumerate(vocab)}


def write_clip_vocabulary(words: Iterable[str], out_dir: Path) -> dict[str, int]:
    """Write ``vocab.json``, ``merges.txt`` and ``bpe_simple_vocab.txt.gz`` into ``out_dir``.

    Returns the vocabulary (token -> id). No trailing newline after the last merge: open_clip's
    reader would otherwise read an empty merge.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    merges = build_merges(words)
    vocab = vocab_from_merges(merges)
    merges_text = "#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in merges)
    atomic_write_bytes(out_dir / "vocab.json", json.dumps(vocab, ensure_ascii=False).encode())
    atomic_write_bytes(out_dir / "merges.txt", merges_text.encode())
    atomic_write_bytes(out_dir / "bpe_simple_vocab.txt.gz", gzip.compress(merges_text.encode(), mtime=0))
    return vocab
