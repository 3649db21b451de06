"""Loss-estimation diagnostics for score-based acquisitions (TOD Figs. 5–6).

On a probe of points whose labels only the harness knows, compare an
acquisition's scores with the classifier's true per-sample loss:

* `spearman`: rank correlation of score and cross-entropy;
* `top_k`: fraction of the k highest-loss points that are among the k highest
  scores (TOD Fig. 6), for k = budget and for fractions of the probe;
* `loss_by_score_bin`: mean true loss in 10 equal bins of descending score
  (TOD Fig. 5);
* `auroc_incorrect`: AUROC of the score at telling misclassified points (positive)
  from correct ones; for CrtCl's critic (score = −C) this is the critic's AUROC
  at telling correct from incorrect predictions.

The same numbers for least confidence (1 − max softmax) are reported alongside as
a reference. Statistics are numpy only (average ranks for ties).
"""

import json
import os
from typing import Any, Dict, Sequence

import jax
import numpy as np

from al_jax.acquisition.base import Acquisition, map_chunks
from al_jax.results import atomic_write  # the workdir's crash-safe writer

TOP_K_FRACTIONS = (0.01, 0.05, 0.1, 0.2)
# Score bins of equal size (10% each). TOD Fig. 5's are 5% wide (20 bins); 10 halves the noise
# of each bin's mean loss on a CPU-sized probe, and the ledgers' runs recorded 10.
NUM_BINS = 10


def rankdata(a: np.ndarray) -> np.ndarray:
  """Ranks 1..n, ties get their average rank (scipy.stats.rankdata 'average')."""
  a = np.asarray(a, np.float64)
  order = np.argsort(a, kind="stable")
  sorted_a = a[order]
  # Boundaries of runs of equal values; each run gets the mean of its positions.
  new = np.r_[True, sorted_a[1:] != sorted_a[:-1]]
  run = np.cumsum(new) - 1
  starts = np.flatnonzero(new)
  ends = np.r_[starts[1:], len(a)]
  avg = (starts + ends - 1) / 2.0 + 1.0
  ranks = np.empty(len(a))
  ranks[order] = avg[run]
  return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
  """Spearman's ρ: Pearson correlation of the average ranks; NaN if either side is constant."""
  ra, rb = rankdata(a), rankdata(b)
  ra -= ra.mean()
  rb -= rb.mean()
  den = np.sqrt(np.sum(ra * ra) * np.sum(rb * rb))
  return float(np.sum(ra * rb) / den) if den > 0 else float("nan")


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
  """P(score of a positive > score of a negative), ties count ½ (Mann–Whitney U).

  NaN when one class is empty.
  """
  scores = np.asarray(scores, np.float64)
  positive = np.asarray(positive, bool)
  n_pos, n_neg = int(positive.sum()), int((~positive).sum())
  if n_pos == 0 or n_neg == 0:
    return float("nan")
  r = rankdata(scores)
  u = r[positive].sum() - n_pos * (n_pos + 1) / 2.0
  return float(u / (n_pos * n_neg))


def top_k_overlap(scores: np.ndarray, loss: np.ndarray, k: int) -> float:
  """Fraction of the k highest-loss points found among the k highest scores (ties by index)."""
  k = int(min(max(k, 1), len(scores)))
  idx = np.arange(len(scores))
  top_s = idx[np.lexsort((idx, -np.asarray(scores, np.float64)))][:k]
  top_l = idx[np.lexsort((idx, -np.asarray(loss, np.float64)))][:k]
  return float(len(np.intersect1d(top_s, top_l)) / k)


def per_sample_nll(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
  """Cross-entropy of each row (float64, log-sum-exp stabilised)."""
  z = np.asarray(logits, np.float64)
  z = z - z.max(-1, keepdims=True)
  logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
  return -logp[np.arange(len(labels)), np.asarray(labels)]


def score_report(scores: np.ndarray, loss: np.ndarray, incorrect: np.ndarray,
                 budget: int) -> Dict[str, Any]:
  """Every statistic of the module docstring for one score vector."""
  n = len(scores)
  order = np.lexsort((np.arange(n), -np.asarray(scores, np.float64)))
  bins = np.array_split(order, min(NUM_BINS, n))
  return {
      "spearman": spearman(scores, loss),
      "auroc_incorrect": auroc(scores, incorrect),
      "top_k_budget": top_k_overlap(scores, loss, budget),
      "top_k": {str(f): top_k_overlap(scores, loss, int(round(f * n)))
                for f in TOP_K_FRACTIONS},
      "loss_by_score_bin": [float(np.mean(loss[b])) for b in bins],
      "mean_score": float(np.mean(scores)),
  }


def _logits(state, x, rng):
  del rng
  return state(x)[0]


def loss_estimation(acq: Acquisition, state, x_all, idx: np.ndarray, labels: np.ndarray,
                    prep, chunk_size: int, rng: jax.Array, budget: int) -> Dict[str, Any]:
  """Scores `x_all[idx]` with `acq` and compares them with the true loss on `labels`.

  Args:
    acq: a score-based acquisition (batch-mode selectors have no per-point score).
    state: the `ModelState` the acquisition scores with (prev_variables set if needed).
    x_all: device array uint8 [N,H,W,C].
    idx: probe indices into `x_all`.
    labels: true labels of the probe (known to the harness only).
    prep: preprocessing; chunk_size: scoring chunk size.
    rng: key for stochastic scores (independent of the selection's key).
    budget: k of the `top_k_budget` statistic.

  Returns:
    JSON-ready dict (see the module docstring).
  """
  idx = np.asarray(idx, np.int64)
  out: Dict[str, Any] = {"acquisition": acq.name, "n": int(len(idx))}
  logits = map_chunks(_logits, state, x_all, idx, prep, chunk_size)
  loss = per_sample_nll(logits, labels)
  incorrect = np.asarray(logits).argmax(-1) != np.asarray(labels)
  out.update(mean_loss=float(loss.mean()), error_rate=float(incorrect.mean()))
  z = np.asarray(logits, np.float64)
  conf = 1.0 - 1.0 / np.exp(z - z.max(-1, keepdims=True)).sum(-1)  # 1 − max softmax
  out["least_confidence"] = score_report(conf, loss, incorrect, budget)
  if type(acq).score is Acquisition.score:
    out["score"] = None  # batch-mode selector without a per-point score
    return out
  scores = np.asarray(map_chunks(acq.score, state, x_all, idx, prep, chunk_size, rng),
                      np.float64)
  out["score"] = score_report(scores, loss, incorrect, budget)
  return out


def write_report(workdir: str, cycle: int, report: Dict[str, Any]) -> str:
  """Writes `diagnostics/cycle_K.json` in the workdir (atomically); returns its path."""
  d = os.path.join(workdir, "diagnostics")
  os.makedirs(d, exist_ok=True)
  path = os.path.join(d, f"cycle_{cycle}.json")
  atomic_write(path, json.dumps(_finite(report), indent=2, sort_keys=True))
  return path


def _finite(obj):
  """NaN → None, so the JSON is standard."""
  if isinstance(obj, float):
    return obj if np.isfinite(obj) else None
  if isinstance(obj, dict):
    return {k: _finite(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [_finite(v) for v in obj]
  return obj


def summary(report: Dict[str, Any], keys: Sequence[str] = ("spearman", "auroc_incorrect")):
  """One log line's worth of the report's acquisition statistics."""
  s = report.get("score") if report else None
  if not s:
    return "no per-point score"
  return ", ".join(f"{k} {s[k]:.3f}" for k in keys if s.get(k) is not None)
