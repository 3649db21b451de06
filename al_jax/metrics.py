"""Evaluation metrics on logits: accuracy, ECE, NLL, Brier."""

from typing import Dict

import jax
import jax.numpy as jnp
import numpy as np


def expected_calibration_error(probs: jnp.ndarray, labels: jnp.ndarray,
                               num_bins: int = 15, predicted=None) -> jnp.ndarray:
  """Equal-width-bin ECE (Guo et al. 2017; CrtCl Eq. 6).

  ECE = Σ_b |B_b|/n · |acc(B_b) − conf(B_b)|, with confidence the max softmax
  probability and bins (k/M, (k+1)/M], the first bin closed at 0. `predicted`: the predicted
  classes (default: argmax of `probs`); `classification_metrics` passes the logits' argmax,
  so ECE and accuracy agree on which predictions are correct even where two probabilities
  round to the same float32.
  """
  conf = probs.max(-1)
  predicted = probs.argmax(-1) if predicted is None else predicted
  correct = (predicted == labels).astype(jnp.float32)
  # ceil(conf·M) − 1 maps (k/M, (k+1)/M] to bin k; conf = 0 goes to bin 0.
  bins = jnp.clip(jnp.ceil(conf * num_bins).astype(jnp.int32) - 1, 0, num_bins - 1)
  count = jnp.zeros(num_bins).at[bins].add(1.0)
  sum_conf = jnp.zeros(num_bins).at[bins].add(conf)
  sum_acc = jnp.zeros(num_bins).at[bins].add(correct)
  return jnp.sum(jnp.abs(sum_acc - sum_conf)) / probs.shape[0]


def classification_metrics(logits: jnp.ndarray, labels: jnp.ndarray,
                           num_bins: int = 15) -> Dict[str, jnp.ndarray]:
  """accuracy, ece, nll (mean), brier (mean over samples of Σ_c (p_c − y_c)², Brier's
  original multi-class form, in [0, 2]; not the per-class mean, which is C× smaller)."""
  logits = logits.astype(jnp.float32)
  logp = jax.nn.log_softmax(logits)
  probs = jnp.exp(logp)
  onehot = jax.nn.one_hot(labels, logits.shape[-1])
  predicted = logits.argmax(-1)
  return {
      "accuracy": jnp.mean(predicted == labels),
      "ece": expected_calibration_error(probs, labels, num_bins, predicted),
      "nll": -jnp.mean(jnp.sum(onehot * logp, -1)),
      "brier": jnp.mean(jnp.sum((probs - onehot) ** 2, -1)),
  }


def to_host(metrics) -> Dict[str, float]:
  return {k: float(np.asarray(v)) for k, v in metrics.items()}
