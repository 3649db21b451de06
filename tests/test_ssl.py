"""Semi-supervised objectives (Mean Teacher, FixMatch) and the on-device RandAugment."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import PIL.Image
import PIL.ImageEnhance
import PIL.ImageOps
import pytest

from al_jax.data import randaugment as ra
from al_jax.loop import ActiveLearner
from tests.conftest import tiny_config


def _image(seed=0, size=16):
  rs = np.random.default_rng(seed)
  yy, xx = np.mgrid[:size, :size]
  base = np.stack([xx * 9, yy * 11, (xx + yy) * 5], -1) % 256
  return np.clip(base + rs.integers(-30, 30, base.shape), 0, 255).astype(np.uint8)


# (our op, magnitude v, the same op with PIL as kekmodel's randaugment.py calls it)
_PIL_OPS = [
    (ra.auto_contrast, 5, PIL.ImageOps.autocontrast),
    (ra.equalize, 5, PIL.ImageOps.equalize),
    (ra.posterize, 3, lambda im: PIL.ImageOps.posterize(im, int(3 * 4 / 10) + 4)),
    (ra.solarize, 4, lambda im: PIL.ImageOps.solarize(im, 256 - int(4 * 256 / 10))),
    (ra.brightness, 7, lambda im: PIL.ImageEnhance.Brightness(im).enhance(7 * 0.9 / 10 + 0.05)),
    (ra.color, 2, lambda im: PIL.ImageEnhance.Color(im).enhance(2 * 0.9 / 10 + 0.05)),
    (ra.contrast, 6, lambda im: PIL.ImageEnhance.Contrast(im).enhance(6 * 0.9 / 10 + 0.05)),
    (ra.sharpness, 3, lambda im: PIL.ImageEnhance.Sharpness(im).enhance(3 * 0.9 / 10 + 0.05)),
    (ra.translate_x, 5, lambda im: im.transform(im.size, PIL.Image.AFFINE,
                                                (1, 0, int(0.15 * 16), 0, 1, 0))),
    (ra.shear_y, 5, lambda im: im.transform(im.size, PIL.Image.AFFINE, (1, 0, 0, 0.15, 1, 0))),
    (ra.rotate, 5, lambda im: im.rotate(15)),
]


@pytest.mark.parametrize("op,v,ref", _PIL_OPS, ids=[o[0].__name__ for o in _PIL_OPS])
def test_ops_match_pil(op, v, ref):
  img = _image()
  # Key 0 draws the "positive" sign for the signed ops (checked below).
  key = jax.random.PRNGKey(0)
  assert not bool(jax.random.bernoulli(key))
  got = np.asarray(jax.jit(op)(jnp.asarray(img, jnp.float32), jnp.float32(v), key))
  want = np.asarray(ref(PIL.Image.fromarray(img)), np.float64)
  # PIL rounds every op to uint8; ours stays float: compare after rounding, ±1 level at every
  # value (measured: the largest difference is 1, for the enhance ops and autocontrast).
  diff = np.abs(np.round(got) - want)
  assert diff.max() <= 1.0, f"{op.__name__}: {int(np.sum(diff > 1))} values differ by > 1"


def test_rand_augment_batched_deterministic_and_cutout():
  x = jnp.asarray(np.stack([_image(s) for s in range(8)]), jnp.float32)
  f = jax.jit(lambda k, x: ra.rand_augment(k, x, 2, 10, 0.5))
  a, b = f(jax.random.PRNGKey(0), x), f(jax.random.PRNGKey(0), x)
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert a.shape == x.shape and float(a.min()) >= 0 and float(a.max()) <= 255
  assert not np.allclose(np.asarray(f(jax.random.PRNGKey(1), x)), np.asarray(a))
  # Every image carries a gray Cutout square of side ≥ 8 // 2 (clipped at the border).
  gray = np.all(np.asarray(a) == ra.CUTOUT_FILL, -1).sum((1, 2))
  assert np.all(gray >= 4)


def _learner(method, **overrides):
  cfg = tiny_config(method, "digits", **{"train.epochs": 1, "al.cycles": 2,
                                          "train.min_steps_per_epoch": 3, **overrides})
  return ActiveLearner(cfg, workdir=None, log=lambda s: None)


def test_mean_teacher_teacher_is_ema_of_student():
  lr = _learner("crc")
  obj = lr.objective
  state = obj.init(jax.random.PRNGKey(0), lr.x_train[:1])
  p0 = state.params
  lab = {"x": lr.x_dev[:16], "y": jnp.asarray(lr.y_train[:16]), "mask": jnp.ones(16)}
  unl = {"x": lr.x_dev[16:48]}
  new, m = jax.jit(obj.train_step)(state, lab, unl, jax.random.PRNGKey(1))
  # First step: decay = min(1 − 1/2, 0.95) = 0.5 (reference `moving_average`).
  want = jax.tree_util.tree_map(lambda a, b: 0.5 * a + 0.5 * b, p0, new.params)
  for a, b in zip(jax.tree_util.tree_leaves(new.aux["teacher"]["params"]),
                  jax.tree_util.tree_leaves(want)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  assert float(m["consistency"]) > 0
  # The student is evaluated (reference code evaluates `model`).
  assert obj.model_state(new).variables["params"] is new.params
  from al_jax.objectives.mean_teacher import sigmoid_rampup
  np.testing.assert_allclose(sigmoid_rampup(jnp.asarray(50), 100), np.exp(-5 * 0.25))
  assert float(sigmoid_rampup(jnp.asarray(500), 100)) == 1.0


def test_fixmatch_threshold_mask_and_ema_model():
  # τ = 0 keeps every pseudo-label.
  lr = _learner("crc_fixmatch", **{"objective_kwargs.threshold": 0.0})
  obj = lr.objective
  state = obj.init(jax.random.PRNGKey(0), lr.x_train[:1])
  p0 = state.params
  lab = {"x": lr.x_dev[:16], "y": jnp.asarray(lr.y_train[:16]), "mask": jnp.ones(16)}
  unl = {"x": lr.x_dev[16:64]}
  step = jax.jit(obj.train_step)
  new, m = step(state, lab, unl, jax.random.PRNGKey(1))
  assert float(m["mask_rate"]) == 1.0 and float(m["unlabeled_loss"]) > 0
  ema = obj.model_state(new).variables["params"]
  d = obj.ema_decay  # the cpu preset's 0.9 (paper: 0.999)
  want = jax.tree_util.tree_map(lambda a, b: d * a + (1 - d) * b, p0, new.params)
  for a, b in zip(jax.tree_util.tree_leaves(ema), jax.tree_util.tree_leaves(want)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  # cos(7π·e/16E) learning-rate factor per epoch, on top of the preset's own schedule.
  s2 = obj.start_epoch(new, 0)
  assert float(s2.opt_state.hyperparams["learning_rate"]) == pytest.approx(1e-3)
  from al_jax import optim as optim_lib
  big_e = obj.epochs = 4  # the test learner trains one epoch; the schedule's E is set here
  for e in (1, big_e - 1):
    want = optim_lib.lr_at_epoch(obj.optim_cfg, e, big_e) * math.cos(7 * math.pi * e / (16 * big_e))
    got = float(obj.start_epoch(new, e).opt_state.hyperparams["learning_rate"])
    assert got == pytest.approx(want, rel=1e-5) and got < optim_lib.lr_at_epoch(
        obj.optim_cfg, e, big_e)


@pytest.mark.parametrize("method", ["crc", "crc_fixmatch"])
def test_crc_with_ssl_objectives_runs_two_cycles(method):
  rows = _learner(method).run()
  assert [r["num_labeled"] for r in rows] == [20, 30]
  assert all(0 <= r["test_accuracy"] <= 1 for r in rows)


def test_early_stopping_patience_stops_on_validation():
  logs = []
  cfg = tiny_config("random", "digits", **{
      "al.cycles": 1, "train.epochs": 6, "al.val_size": 100, "train.early_stopping": True,
      "train.early_stopping_patience": 2, "optim.lr": 0.0})
  ActiveLearner(cfg, workdir=None, log=logs.append).run()
  # lr 0: validation accuracy never improves after epoch 1, so epoch 3 stops the cycle.
  assert any("stopping at epoch 3" in line for line in logs)
