"""A linear text classifier over hashed character and word n-grams, stored without pickle.

The features are stateless (scikit-learn's HashingVectorizer), so what training learns is only
numbers: the idf of each hashed feature and one row of weights per output. They are saved as a
JSON description beside an `.npz` of plain arrays (loaded with `allow_pickle=False`), and the
same `features` function serves training and scoring, so the two cannot drift apart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import HashingVectorizer

# (analyzer, smallest n, largest n): character n-grams carry paraphrases and other languages'
# cognates ("instruc", "ignor", "prompt"); word pairs carry the phrasing of an order.
BLOCKS: tuple[tuple[str, int, int], ...] = (("char_wb", 2, 5), ("word", 1, 2))
HASH_BITS = 20


def vectorizers(blocks: tuple[tuple[str, int, int], ...] = BLOCKS, bits: int = HASH_BITS) -> list[HashingVectorizer]:
    return [HashingVectorizer(analyzer=analyzer, ngram_range=(low, high), n_features=2**bits,
                              alternate_sign=False, norm=None, lowercase=True)
            for analyzer, low, high in blocks]


def counts(texts: list[str], hashers: list[HashingVectorizer]) -> sparse.csr_matrix:
    """Raw n-gram counts, one block per hasher side by side."""
    return sparse.hstack([h.transform(texts) for h in hashers], format="csr")


def features(raw: sparse.csr_matrix, idf: np.ndarray, block_of: np.ndarray, blocks: int) -> sparse.csr_matrix:
    """Sublinear tf × idf, each block scaled to unit length, so no block outweighs another.
    `block_of`: the block of each column."""
    x = raw.astype(np.float32).tocsr()
    x.data = np.log1p(x.data) * idf[x.indices]
    squares = sparse.csr_matrix((x.data**2, block_of[x.indices], x.indptr), shape=(x.shape[0], blocks))
    norms = np.sqrt(squares.toarray())  # (rows, blocks); duplicates summed
    norms[norms == 0] = 1.0
    rows = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
    x.data = x.data / (norms[rows, block_of[x.indices]] * np.sqrt(blocks))
    return x


def compact(raw: sparse.csr_matrix, index: np.ndarray) -> sparse.csr_matrix:
    """The columns in `index` (sorted) only, renumbered 0..len(index)-1; other n-grams are dropped."""
    raw = raw.tocsr()
    position = np.searchsorted(index, raw.indices)
    position[position == len(index)] = 0
    known = index[position] == raw.indices if len(index) else np.zeros(len(raw.indices), dtype=bool)
    rows = np.repeat(np.arange(raw.shape[0]), np.diff(raw.indptr))
    return sparse.csr_matrix((raw.data[known], (rows[known], position[known])), shape=(raw.shape[0], len(index)))


def idf_of(raw: sparse.csr_matrix) -> np.ndarray:
    """Smoothed idf (as TfidfTransformer computes it) over every column; 0 for columns never seen."""
    seen = np.bincount(raw.indices, minlength=raw.shape[1])
    idf = np.log((1 + raw.shape[0]) / (1 + seen)) + 1.0
    idf[seen == 0] = 0.0
    return idf.astype(np.float32)


@dataclass(frozen=True)
class LinearTextModel:
    outputs: tuple[str, ...]
    thresholds: dict[str, float]
    index: np.ndarray  # the hashed features seen in training, sorted
    idf: np.ndarray  # per kept feature
    coef: np.ndarray  # (outputs, kept features)
    intercept: np.ndarray  # (outputs,)
    meta: dict[str, Any]

    @cached_property
    def _hashers(self) -> list[HashingVectorizer]:
        return vectorizers(self.blocks, self.meta["hash_bits"])

    @property
    def blocks(self) -> tuple[tuple[str, int, int], ...]:
        return tuple((str(a), int(low), int(high)) for a, low, high in self.meta["blocks"])

    @cached_property
    def _block_of(self) -> np.ndarray:
        return (self.index // 2 ** self.meta["hash_bits"]).astype(np.int64)

    def vectors(self, texts: list[str]) -> sparse.csr_matrix:
        raw = compact(counts(texts, self._hashers), self.index)
        return features(raw, self.idf, self._block_of, len(self.blocks))

    @cached_property
    def _weight_rows(self) -> np.ndarray:
        """(features, outputs): a text picks the rows of its own few features; a sparse product with
        `coef.T` would copy every weight for each text."""
        return np.ascontiguousarray(self.coef.T)

    def probabilities(self, text: str) -> dict[str, float]:
        x = self.vectors([text])
        logits = x.data @ self._weight_rows[x.indices] + self.intercept
        probs = 1.0 / (1.0 + np.exp(-logits))
        return dict(zip(self.outputs, (float(p) for p in probs), strict=True))

    def save(self, path: Path) -> None:
        """`path`.json (description, thresholds, data attribution) and `path`.npz (plain arrays; the weights
        in half precision, which moves no probability by more than about 0.001 and halves the file)."""
        np.savez_compressed(path.with_suffix(".npz"), index=self.index.astype(np.int64),
                            idf=self.idf.astype(np.float16), coef=self.coef.astype(np.float16),
                            intercept=self.intercept.astype(np.float32))
        description = {**self.meta, "outputs": list(self.outputs), "thresholds": self.thresholds}
        path.with_suffix(".json").write_text(json.dumps(description, indent=2, ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, path: Path) -> LinearTextModel:
        description = json.loads(path.with_suffix(".json").read_text())
        with np.load(path.with_suffix(".npz"), allow_pickle=False) as arrays:
            index, idf, coef, intercept = (arrays[k] for k in ("index", "idf", "coef", "intercept"))
            idf, coef = idf.astype(np.float32), coef.astype(np.float32)
        outputs = tuple(description.pop("outputs"))
        thresholds = description.pop("thresholds")
        return cls(outputs, thresholds, index, idf, coef, intercept, description)
