"""One training step of every objective in float32 agrees with the same step in float64.

A compiler that miscompiles a fusion in a training step (jax-ml/jax#39103's class of bug)
shows up here as a float32 step that departs from its float64 reference far beyond float32
rounding. al_jax computes in `al_jax.numerics.float_dtype()` (float64 under
`jax.enable_x64`) and draws every random number in float32/int32, so the float64 run sees
the same augmentations, dropout masks, noise and latent draws as the float32 one.

Every optimiser is replaced by plain SGD (no momentum, no weight decay) for the test, so each
parameter's update is −lr·∇ and comparing updates compares gradients; Adam's first step
(≈ −lr·sign(∇)) would hide a wrong gradient.

Compared after one step, per state group (classifier params, BatchNorm statistics, each side
model and EMA copy): ‖Δ₃₂ − Δ₆₄‖ ≤ UPDATE_RTOL·‖Δ₆₄‖ + ‖ulp(new₃₂)‖, where Δ is new − old
(storing the new values in float32 rounds each by half an ulp, which is storage, not
arithmetic); and every reported loss to LOSS_RTOL.

The comparison assumes no decision of the step (a ReLU mask, a max-pool winner, an argmax
label, a hinge) sits within float32 rounding of its threshold: such a point flips with the
evaluation order and moves the float32 update legitimately. The data below satisfy that.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from al_jax import loop, optim
from tests.conftest import tiny_config

# Stated tolerances (float32 rounding of one step is ~1e-6 relative; the miscompiles this
# guards against were 1e-2 and larger).
UPDATE_RTOL = 2e-4
LOSS_RTOL = 2e-5

# objective → (method whose preset it runs under, extra overrides).
SMALL_CNN = {
    "supervised": ("random", {}),
    "tod_ema": ("tod", {}),
    "critic": ("crtcl", {}),
    "critic_no_gen": ("crtcl_select_only", {}),
    "mean_teacher": ("random_mt", {}),
    # τ = 0 keeps every pseudo-label, so the unlabeled term takes part at initialisation.
    "fixmatch": ("random_fixmatch", {"objective_kwargs.threshold": 0.0}),
    "loss_pred": ("ll4al", {}),
    "vaal": ("vaal", {}),
    "aral": ("aral", {"model.kwargs.hidden": (64, 32), "objective_kwargs.latent_dim": 8,
                      "objective_kwargs.mlp_hidden": (32,),
                      "objective_kwargs.sampler_hidden": (32,)}),
    "aral_no_encoder": ("aral_no_encoder", {"model.kwargs.hidden": (64, 32),
                                            "objective_kwargs.latent_dim": 8,
                                            "objective_kwargs.mlp_hidden": (32,)}),
}
RESNET = {"model.name": "resnet18", "model.kwargs": {"width_multiplier": 0.125}}
RESNET_OBJECTIVES = ("supervised", "loss_pred", "tod_ema")


def _plain_sgd(name, learning_rate, momentum, nesterov, weight_decay, b1, b2, grad_clip):
  del name, momentum, nesterov, weight_decay, b1, b2, grad_clip
  return optax.sgd(learning_rate)


def _learner(method, overrides, dataset="digits"):
  cfg = tiny_config(method, dataset, **{"optim.lr": 0.1, "train.batch_size": 16,
                                         "train.unlabeled_batch_size": 16, **overrides})
  return loop.ActiveLearner(cfg, log=lambda s: None)


def _cast(tree, dtype):
  floating = lambda a: hasattr(a, "dtype") and jnp.issubdtype(a.dtype, jnp.floating)
  return jax.tree_util.tree_map(lambda a: a.astype(dtype) if floating(a) else a, tree)


def _groups(old, new):
  """{group name: (old leaves, new leaves)} for every float leaf of the state."""
  out = {}
  for name in ("params", "batch_stats", "aux"):
    o, n = getattr(old, name), getattr(new, name)
    if name == "aux" and isinstance(o, dict):
      for k in o:
        out[f"aux/{k}"] = (o[k], n[k])
    else:
      out[name] = (o, n)
  return out


def _delta(old, new):
  leaves = lambda t: [np.asarray(a, np.float64) for a in jax.tree_util.tree_leaves(t)
                      if jnp.issubdtype(jnp.asarray(a).dtype, jnp.floating)]
  o, n = leaves(old), leaves(new)
  return np.concatenate([(b - a).ravel() for a, b in zip(o, n)]) if o else np.zeros(0)


def _values(tree):
  return np.concatenate([np.asarray(a, np.float64).ravel() for a in jax.tree_util.tree_leaves(tree)
                         if jnp.issubdtype(jnp.asarray(a).dtype, jnp.floating)] or [np.zeros(0)])


def _step_both(objective, method, overrides, monkeypatch, dataset="digits"):
  monkeypatch.setattr(optim, "_chain", _plain_sgd)
  learner = _learner(method, overrides, dataset)
  obj = learner.objective
  assert obj.name == objective
  n = 16
  lab = {"x": learner.x_dev[:n], "y": jnp.asarray(learner.y_train[:n]),
         "mask": jnp.ones(n, jnp.float32)}
  unl = {"x": learner.x_dev[n:3 * n]} if obj.uses_unlabeled else None
  # The key the loop hands the first step (it folds the step in), so the draws are its own.
  key = jax.random.fold_in(jax.random.PRNGKey(3), 0)
  s32 = obj.start_epoch(obj.init(jax.random.PRNGKey(0), learner.x_train[:1]), 0)
  new32, m32 = jax.jit(obj.train_step)(jax.tree_util.tree_map(jnp.copy, s32), lab, unl, key)
  with jax.enable_x64(True):
    s64 = _cast(s32, jnp.float64)
    lab64 = dict(lab, mask=lab["mask"].astype(jnp.float64))
    new64, m64 = jax.jit(obj.train_step)(s64, lab64, unl, key)
    assert all(a.dtype != jnp.float32 for a in jax.tree_util.tree_leaves(new64.params))
    new64 = jax.tree_util.tree_map(np.asarray, new64)
    m64 = {k: float(v) for k, v in m64.items()}
  return s32, new32, m32, new64, m64


def _check(s32, new32, m32, new64, m64):
  report = {}
  for k, v in m64.items():
    np.testing.assert_allclose(float(m32[k]), v, rtol=LOSS_RTOL, atol=1e-6, err_msg=k)
  g32, g64 = _groups(s32, new32), _groups(s32, new64)
  for name in g32:
    d32, d64 = _delta(*g32[name]), _delta(*g64[name])
    scale = np.linalg.norm(d64)
    if scale == 0:
      assert np.linalg.norm(d32) == 0, name
      continue
    # Storing the new values in float32 rounds each by up to half an ulp: that part of the
    # difference is storage, not arithmetic, and is allowed on top of the tolerance.
    ulp = np.linalg.norm(np.spacing(_values(g32[name][1]).astype(np.float32)))
    err = float(np.linalg.norm(d32 - d64))
    report[name] = (err / scale, float(ulp / scale))
    assert err <= UPDATE_RTOL * scale + ulp, (
        f"{name}: float32 update off by {err / scale:.2e} relative (storage rounding "
        f"allows {ulp / scale:.1e})")
  assert "params" in report  # the classifier did learn
  return report


@pytest.mark.parametrize("objective", sorted(SMALL_CNN))
def test_small_model_step_matches_float64(objective, monkeypatch):
  method, overrides = SMALL_CNN[objective]
  _check(*_step_both(objective, method, overrides, monkeypatch))


@pytest.mark.parametrize("objective", RESNET_OBJECTIVES)
def test_resnet18_step_matches_float64(objective, monkeypatch):
  method, overrides = SMALL_CNN[objective]
  # 16×16 synthetic images: on 8×8 digits the last stage is 1×1 and one ReLU input sits at
  # −1.9e-6 in float64, inside float32's forward error (1.1e-5 after a 16-sample BatchNorm of
  # a 1×1 map), so a fusion that recomputes it flips its mask and moves the whole update by
  # 2.5% — rounding at a kink, not a wrong compile (BUILD_NOTES, "Numerics").
  _check(*_step_both(objective, method, {**overrides, **RESNET}, monkeypatch, "synthetic"))
