"""The objective contract and the pieces every objective shares.

An objective is built once per run and exposes pure functions:

  init(rng, example_x) -> state
  train_step(state, labeled, unlabeled, rng) -> (state, metrics)   # jit-compiled by the loop
  model_state(state) -> ModelState                                 # what evaluation/acquisition see

`rng` is already this step's key: the loop folds the optimiser step into the cycle's training
key (`jax.random.fold_in(k_cycle, state.step)`, flax's wmt example and big_vision) before it
calls `train_step`, so every step draws fresh augmentations and dropout masks; an objective
splits it by purpose and never folds the step in again.

`labeled` is `{"x": uint8 [B,H,W,C], "y": int32 [B], "mask": float32 [B]}` (mask
zeroes padding so every step has the same shape); `unlabeled` is
`{"x": uint8 [Bu,H,W,C]}` or None when `uses_unlabeled` is False. Augmentation
and normalisation happen inside the step through `self.prep`.

Side models (networks beside the classifier, EMA copies) live in `state.aux[name]` in one
layout and are declared in `self.side_models` (`al_jax.objectives.side`): `start_epoch` and
`warm_start` handle their learning rates and cycle-to-cycle carry-over here, once.
"""

import abc
import functools
from typing import Any, Dict, Optional, Tuple

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax.training import train_state

from al_jax import numerics, optim
from al_jax.data.augment import Preprocess
from al_jax.objectives.side import SideModel
from al_jax.registry import Registry
from al_jax.state import ModelState

OBJECTIVES: Registry = Registry("objective")


class TrainState(train_state.TrainState):
  """Flax TrainState + BatchNorm statistics, the current epoch and side-model state.

  `epoch` is an int32 array set by the loop at each epoch start so that
  epoch-dependent rules (LL4AL's feature detaching, CrtCl's E') need no recompile.
  `aux` holds the side models, `{name: {"params", "batch_stats"[, "opt_state"][, "step"]}}`
  (`al_jax.objectives.side`).
  """
  batch_stats: Any = None
  epoch: jnp.ndarray = 0
  aux: Any = flax.struct.field(default_factory=dict)


def masked_mean(x: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
  return jnp.sum(x * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def cross_entropy(logits: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
  """Per-sample cross-entropy [B]."""
  return optax.softmax_cross_entropy_with_integer_labels(
      logits.astype(numerics.float_dtype()), labels)


def as_tuple(v) -> tuple:
  """A config value that may be a scalar or a sequence, as a tuple (layer widths)."""
  return tuple(v) if isinstance(v, (list, tuple)) else (v,)


class Objective(abc.ABC):
  """Base class: a classifier trained with cross-entropy; subclasses add terms.

  Args:
    model: a classifier returning `(logits, features)` (al_jax.models contract).
    prep: on-device preprocessing of the dataset.
    num_classes: number of classes.
    optim_cfg: optimizer config (see `al_jax.optim.make_optimizer`).
    epochs: epochs per cycle (for per-epoch learning-rate schedules).
  """
  name = "base"
  uses_unlabeled = False
  # Side models the objective exposes in `ModelState.aux` for acquisitions that declare
  # them in `requires` (checked when a run is configured: al_jax.methods.check_pairing).
  provides: Tuple[str, ...] = ()

  def __init__(self, model: nn.Module, prep: Preprocess, num_classes: int, optim_cfg,
               epochs: int, **kwargs):
    if kwargs:
      raise TypeError(f"objective {self.name!r} got unknown settings: {sorted(kwargs)}")
    self.model = model
    self.prep = prep
    self.num_classes = num_classes
    self.optim_cfg = optim_cfg
    self.epochs = epochs
    self.tx = optim.make_optimizer(optim_cfg)
    # name → SideModel for every entry of `state.aux` (set by subclasses).
    self.side_models: Dict[str, SideModel] = {}

  # --- the classifier -----------------------------------------------------------------
  def apply_model(self, variables, x, train: bool = False, dropout=None, rngs=None):
    """Inference-mode forward pass (the `ModelState.apply_fn`)."""
    return self.model.apply(variables, x, train=train, dropout=dropout, rngs=rngs)

  def init_classifier(self, rng: jax.Array, example_x: jnp.ndarray) -> TrainState:
    # One compiled initialisation (model + optimiser state): eager, Flax's `init` and optax's
    # `init` compiled every initialiser and every zeros_like separately, ~3 s of a run's first
    # cycle on 2 cores (fashion_mnist small CNN). Same values bit for bit (tested).
    return self._jit_init_classifier(rng, self.prep.eval(example_x[:1]))

  @functools.cached_property
  def _jit_init_classifier(self):
    return jax.jit(self._init_classifier)

  def _init_classifier(self, rng: jax.Array, x: jnp.ndarray) -> TrainState:
    variables = self.model.init({"params": rng, "dropout": rng}, x, train=False)
    return TrainState.create(apply_fn=self.apply_model, params=variables["params"],
                             batch_stats=variables.get("batch_stats", {}), tx=self.tx,
                             epoch=jnp.zeros((), jnp.int32))

  def forward_train(self, params, batch_stats, x, rng):
    """Train-mode forward: batch statistics, dropout on; returns (logits, feats, new_stats)."""
    (logits, feats), upd = self.model.apply(
        {"params": params, "batch_stats": batch_stats}, x, train=True,
        rngs={"dropout": rng}, mutable=["batch_stats"])
    # Models without BatchNorm (mlp, noisy_mlp) return no "batch_stats" collection.
    return logits, feats, upd.get("batch_stats", batch_stats)

  # --- the contract ---------------------------------------------------------------------
  def init(self, rng: jax.Array, example_x: jnp.ndarray) -> TrainState:
    return self.init_classifier(rng, example_x)

  def start_epoch(self, state: TrainState, epoch: int) -> TrainState:
    """Host-side, once per epoch: set the epoch counter and the epoch's learning rate of the
    classifier and of every side model (`SideModel.schedule`)."""
    lr = optim.lr_at_epoch(self.optim_cfg, epoch, self.epochs)
    state = state.replace(epoch=jnp.asarray(epoch, jnp.int32),
                          opt_state=optim.set_learning_rate(state.opt_state, lr))
    if not self.side_models:
      return state
    base = float(self.optim_cfg.lr)
    return state.replace(aux={k: self.side_models[k].start_epoch(v, lr, base)
                              for k, v in state.aux.items()})

  def warm_start(self, prev: TrainState, fresh: TrainState) -> TrainState:
    """Keep the previous cycle's weights with a fresh optimiser (LL4AL's public code); each
    side model keeps what its `SideModel.warm` names."""
    aux = {k: self.side_models[k].warm_start(prev.aux[k], v) for k, v in fresh.aux.items()}
    return fresh.replace(params=prev.params, batch_stats=prev.batch_stats, aux=aux)

  def model_state(self, state: TrainState) -> ModelState:
    return ModelState(apply_fn=self.apply_model,
                      variables={"params": state.params, "batch_stats": state.batch_stats})

  def write_artifacts(self, state: TrainState, path_prefix: str, cycle: int) -> None:
    """Optional per-cycle files (e.g. ARAL's generated samples); default none.

    Called by the loop after each cycle's evaluation when the run has a workdir;
    `path_prefix` is `<workdir>/artifacts/cycle_<K>` (the objective creates the folder).
    """
    del state, path_prefix, cycle

  @abc.abstractmethod
  def train_step(self, state: TrainState, labeled: Dict[str, jnp.ndarray],
                 unlabeled: Optional[Dict[str, jnp.ndarray]],
                 rng: jax.Array) -> Tuple[TrainState, Dict[str, jnp.ndarray]]:
    """One optimisation step; pure, so the loop can jit it once per run."""
