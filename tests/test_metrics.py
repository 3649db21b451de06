import jax
import jax.numpy as jnp
import numpy as np
import pytest

from al_jax import metrics


def reference_ece(probs, labels, n_bins):
  """Independent equal-width ECE: bins (lo, hi] by explicit loop, as Guo et al. 2017."""
  conf = probs.max(1)
  pred = probs.argmax(1)
  edges = np.linspace(0.0, 1.0, n_bins + 1)
  ece = 0.0
  for lo, hi in zip(edges[:-1], edges[1:]):
    in_bin = (conf > lo) & (conf <= hi)
    if lo == 0.0:
      in_bin |= conf == 0.0
    if in_bin.any():
      ece += in_bin.mean() * abs((pred[in_bin] == labels[in_bin]).mean() - conf[in_bin].mean())
  return ece


@pytest.mark.parametrize("n_bins,seed", [(15, 0), (10, 1), (15, 2), (5, 3)])
def test_ece_matches_reference(n_bins, seed):
  rs = np.random.default_rng(seed)
  logits = rs.normal(size=(2000, 10)) * rs.uniform(0.1, 4.0)
  probs = np.asarray(jax.nn.softmax(jnp.asarray(logits, jnp.float32)), np.float64)
  labels = rs.integers(0, 10, 2000)
  got = float(metrics.expected_calibration_error(jnp.asarray(probs, jnp.float32),
                                                 jnp.asarray(labels), n_bins))
  want = reference_ece(np.asarray(probs, np.float32).astype(np.float64), labels, n_bins)
  assert abs(got - want) < 1e-6


def test_classification_metrics_exact_on_fixed_logits():
  logits = jnp.log(jnp.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.5, 0.25, 0.25]]))
  labels = jnp.array([0, 2, 0])
  m = metrics.to_host(metrics.classification_metrics(logits, labels, num_bins=10))
  assert m["accuracy"] == pytest.approx(2 / 3)
  assert m["nll"] == pytest.approx(-(np.log(0.7) + np.log(0.1) + np.log(0.5)) / 3, rel=1e-5)
  brier = ((0.3**2 + 0.2**2 + 0.1**2) + (0.1**2 + 0.8**2 + 0.9**2) + (0.5**2 + 0.25**2 * 2)) / 3
  assert m["brier"] == pytest.approx(brier, rel=1e-5)
  # bins: 0.7 → (0.6,0.7], correct; 0.8 → (0.7,0.8], wrong; 0.5 → (0.4,0.5], correct.
  assert m["ece"] == pytest.approx((0.3 + 0.8 + 0.5) / 3, rel=1e-5)


def test_ece_and_accuracy_agree_on_which_predictions_are_correct():
  # Logits 1e-8 apart give float32 probabilities that tie (0.5, 0.5): argmax of the
  # probabilities says class 0, of the logits class 1. Both metrics read the logits'.
  logits = jnp.asarray([[0.0, 1e-8, -5.0]], jnp.float32)
  probs = jax.nn.softmax(logits)
  assert float(probs[0, 0]) == float(probs[0, 1])
  m = metrics.classification_metrics(logits, jnp.asarray([1]))
  assert float(m["accuracy"]) == 1.0
  conf = float(probs.max())
  assert float(m["ece"]) == pytest.approx(abs(1.0 - conf), abs=1e-6)
