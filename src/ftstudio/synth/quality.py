"""Quality filters for generated pairs: length, lexical grounding in the source chunk, near-duplicate questions.

Grounding is a cheap lexical score: the share of the answer's content words (lower-cased, crudely stemmed, stop words
left out) that occur in the chunk. Near-duplicates are found with MinHash over word shingles of the normalised
question, banded for candidate look-up, then confirmed with the exact Jaccard similarity.
"""

from __future__ import annotations

import re
import zlib
from collections import defaultdict

import numpy as np

_WORD = re.compile(r"[^\W_]+", re.U)
_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "been",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "may",
        "might",
        "more",
        "most",
        "no",
        "not",
        "of",
        "on",
        "or",
        "our",
        "should",
        "so",
        "such",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "to",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "also",
        "very",
        "just",
        "about",
        "over",
        "under",
        "between",
        "each",
        "other",
        "some",
        "any",
        "all",
        "both",
        "one",
        "two",
        "three",
    ]
)


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def stem(word: str) -> str:
    for suffix in ("ing", "edly", "ed", "es", "ly", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def content_terms(text: str) -> list[str]:
    return [stem(w) for w in words(text) if w not in _STOP and (len(w) > 2 or w.isdigit())]


def grounding_score(answer: str, source_terms: set[str]) -> float:
    """Share of the answer's content terms found in the source (1.0 for an answer with no content terms)."""
    terms = content_terms(answer)
    if not terms:
        return 0.0
    return sum(t in source_terms for t in terms) / len(terms)


def length_problem(question: str, answer: str, *, min_q: int, min_a: int, max_a: int) -> str | None:
    """The drop reason for a pair failing a length rule, else None."""
    q, a = question.strip(), answer.strip()
    if not q or not a:
        return "empty"
    if len(q) < min_q or len(a) < min_a:
        return "too_short"
    if len(a) > max_a or len(q) > max_a:
        return "too_long"
    return None


def shingles(text: str, n: int = 3, toks: list[str] | None = None) -> set[str]:
    toks = words(text) if toks is None else toks
    if len(toks) < n:
        return {" ".join(toks)} if toks else set()
    return {" ".join(toks[i : i + n]) for i in range(len(toks) - n + 1)}


class DuplicateIndex:
    """MinHash + LSH index of question shingle sets; `add_if_new` keeps a question unless a near-duplicate exists.

    64 permutations in 16 bands of 4: a pair at Jaccard 0.8 shares a band with probability 0.9998. Templated
    questions share bands often, so many candidates are first screened by signature agreement (one vectorised
    comparison) and only the plausible ones are confirmed with the exact Jaccard similarity. A band value shared
    by very many questions (the template's own words) contributes only its `bucket_cap` most recent members, so
    the cost per question stays flat as the file grows; a real near-duplicate shares several bands, and exact
    duplicates (after normalisation) are caught by a plain set.

    Every question of a generation run passes through here on the event loop, and its arrays are small, so the
    code keeps numpy calls (each with a fixed cost of about a microsecond) few: 32-bit arithmetic wraps by itself.
    """

    bucket_cap = 64
    screen_above = 8  # more candidates than this are screened by signature agreement first

    def __init__(self, threshold: float = 0.8, num_perm: int = 64, bands: int = 16, seed: int = 1):
        rng = np.random.default_rng(seed)
        self.threshold = threshold
        self.bands, self.rows = bands, num_perm // bands
        # (a*x + b) mod 2^32 per permutation, x the shingle's CRC-32: uint32 arithmetic is exactly that.
        self._a = rng.integers(1, 1 << 31, size=num_perm, dtype=np.uint64).astype(np.uint32)
        self._b = rng.integers(0, 1 << 31, size=num_perm, dtype=np.uint64).astype(np.uint32)
        self._buckets: list[dict[bytes, list[int]]] = [defaultdict(list) for _ in range(bands)]
        self._sets: list[set[str]] = []
        self._sigs = np.zeros((64, num_perm), dtype=np.uint32)
        self._exact: set[str] = set()
        # The estimate's standard error is about 0.06 with 64 permutations: 0.25 below is a wide margin.
        self._min_agree = int(np.ceil((threshold - 0.25) * num_perm))

    def __len__(self) -> int:
        return len(self._sets)

    def _signature(self, items: set[str]) -> np.ndarray:
        hashes = np.array([zlib.crc32(s.encode()) for s in items], dtype=np.uint32)
        values = np.multiply.outer(hashes, self._a)
        values += self._b
        return values.min(axis=0)

    def add_if_new(self, text: str) -> bool:
        """Add `text` and return True, or return False if a question at least `threshold` similar is present."""
        toks = words(text)
        items = shingles(text, toks=toks)
        if not items:
            return False
        normal = " ".join(toks)
        if normal in self._exact:
            return False
        sig = self._signature(items)
        raw, step = sig.tobytes(), self.rows * sig.itemsize
        keys = [raw[i : i + step] for i in range(0, len(raw), step)]  # one band's rows each
        candidates: set[int] = set()
        for buckets, key in zip(self._buckets, keys, strict=True):
            bucket = buckets.get(key)
            if bucket:
                candidates.update(bucket[-self.bucket_cap :])
        if len(candidates) > self.screen_above:
            idx = np.fromiter(candidates, dtype=np.int64, count=len(candidates))
            agreement = np.count_nonzero(self._sigs[idx] == sig, axis=1)
            candidates = idx[agreement >= self._min_agree].tolist()
        for i in candidates:  # a few: the exact similarity costs less than the screen
            other = self._sets[i]
            if len(items & other) / len(items | other) >= self.threshold:
                return False
        idx = len(self._sets)
        self._exact.add(normal)
        self._sets.append(items)
        if idx == len(self._sigs):
            self._sigs = np.concatenate([self._sigs, np.zeros_like(self._sigs)])
        self._sigs[idx] = sig
        for buckets, key in zip(self._buckets, keys, strict=True):
            buckets[key].append(idx)
        return True
