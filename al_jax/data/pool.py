"""Pool bookkeeping: which train indices are labeled.

A `Pool` is immutable: `label(idx)` returns a new pool. It holds the true
labels (the oracle) but exposes to the rest of the harness only the labels of
labeled points (`visible_labels`, −1 elsewhere), so objectives and acquisition
functions cannot read the labels of unlabeled points.
"""

from typing import Optional

import numpy as np

from al_jax import ALError


class Pool:
  """Labeled/unlabeled split of a training set."""

  def __init__(self, y_train: np.ndarray, labeled: np.ndarray):
    self._y = np.asarray(y_train, np.int32)
    labeled = np.asarray(labeled, np.int64)
    self._check(labeled, np.zeros(len(self._y), bool))
    self._labeled = labeled.copy()
    self._mask = np.zeros(len(self._y), bool)
    self._mask[labeled] = True

  def _check(self, idx: np.ndarray, mask: np.ndarray) -> None:
    if idx.ndim != 1:
      raise ALError(f"indices to label must be 1-D, got shape {idx.shape}")
    if idx.size and (idx.min() < 0 or idx.max() >= len(self._y)):
      raise ALError(f"indices out of range [0, {len(self._y)}): "
                    f"{idx[(idx < 0) | (idx >= len(self._y))][:5].tolist()}")
    if len(np.unique(idx)) != len(idx):
      raise ALError("indices to label contain duplicates")
    if mask[idx].any():
      raise ALError(f"indices already labeled: {idx[mask[idx]][:5].tolist()}")

  @property
  def size(self) -> int:
    return len(self._y)

  @property
  def labeled(self) -> np.ndarray:
    """Labeled indices in the order they were labeled."""
    return self._labeled.copy()

  @property
  def labeled_mask(self) -> np.ndarray:
    return self._mask.copy()

  @property
  def unlabeled(self) -> np.ndarray:
    """Unlabeled indices, ascending."""
    return np.flatnonzero(~self._mask)

  @property
  def num_labeled(self) -> int:
    return len(self._labeled)

  def visible_labels(self) -> np.ndarray:
    """int32 [N]: true labels of labeled points, −1 for unlabeled ones."""
    return np.where(self._mask, self._y, -1).astype(np.int32)

  def label(self, idx) -> "Pool":
    """Oracle step: reveal the labels of `idx`; refuses duplicates, labeled, out-of-range."""
    idx = np.asarray(idx, np.int64)
    self._check(idx, self._mask)
    return Pool(self._y, np.concatenate([self._labeled, idx]))

  @classmethod
  def initial(cls, y_train: np.ndarray, size: int, rng: np.random.Generator,
              class_balanced: bool = False, num_classes: Optional[int] = None,
              exclude: Optional[np.ndarray] = None) -> "Pool":
    """Random initial pool; `class_balanced` draws size/num_classes per class (CRC §4).

    `exclude` (e.g. a validation split) is never drawn.
    """
    y = np.asarray(y_train)
    candidates = np.setdiff1d(np.arange(len(y)), exclude if exclude is not None else [])
    if size <= 0:
      raise ALError(f"initial pool size must be positive, got {size}")
    if size > len(candidates):
      raise ALError(f"initial pool of {size} is larger than the {len(candidates)} available "
                    "training points")
    if not class_balanced:
      return cls(y, np.sort(rng.choice(candidates, size, replace=False)))
    k = num_classes or int(y.max()) + 1
    if size % k:
      raise ALError(f"class-balanced initial pool of {size} is not a multiple of {k} classes")
    picks = []
    for c in range(k):
      members = candidates[y[candidates] == c]
      if len(members) < size // k:
        raise ALError(f"class {c} has only {len(members)} points, "
                      f"fewer than {size // k} for a class-balanced pool")
      picks.append(rng.choice(members, size // k, replace=False))
    return cls(y, np.sort(np.concatenate(picks)))
