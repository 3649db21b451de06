"""PT4AL (Yi et al., ECCV 2022): a rotation pretext task orders the pool into batches.

1. A rotation-prediction network (the classifier architecture with a 4-way head)
   is trained on all training images; no labels are needed (rotations are
   self-supervised).
2. Every image gets its pretext loss (mean cross-entropy over its 4 rotations,
   inference mode); the pool is sorted by descending loss and split into
   `num_batches` equal batches.
3. The initial labeled set is batch 0 (the highest pretext losses) sampled at even
   intervals (`initial="batch0"`, the public main.py's first cycle, `samples[j·5]` of a
   5,000-image batch); `initial="random"` keeps the harness's shared random pool instead.
4. The selection after cycle k takes, from batch k + 1, the `budget` points with
   the lowest top-1 softmax confidence of the current classifier.

The pretext model is fitted once per run and cached; its key is the run's
selection key (`SelectContext.run_rng`), so a resumed run refits the same model
and reproduces the same selections. Called without a run key (outside the
loop), the call's own key is used instead, so the ordering is refitted whenever
the key changes. Deviations from the public code (johnsk95/PT4AL) are listed in
BUILD_NOTES.md: losses are sorted as numbers (the code sorts their strings), the
final pretext model is used (the code keeps the epoch with the best test-set
rotation accuracy).
"""

import functools
import math
import zlib
from typing import Any, Dict, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training import train_state

from al_jax import ALError
from al_jax import optim as optim_lib
from al_jax.acquisition.base import ACQUISITIONS, Acquisition, map_chunks, top_k
from al_jax.models import get_model
from al_jax.state import ModelState

NUM_ROTATIONS = 4
_PRETEXT_STREAM = zlib.crc32(b"pt4al") & 0x7FFFFFFF  # fold-in constant of the pretext key

# CPU-scale network and optimiser; the paper preset sets PT4AL's ResNet-18, SGD 0.1 (momentum
# 0.9, weight decay 5e-4), batch 256, ×0.1 at 30/60/90 (never reached). Epochs: 15, the
# authors' correction (johnsk95/PT4AL rotation.py at 79b8279 loops `range(start_epoch,
# start_epoch+15)`; README at a01d80f: "supposed to run only 15 epochs, but it was written
# incorrectly as 120 epochs").
PRETEXT_EPOCHS = 15
DEFAULT_MODEL_KWARGS = {"widths": (16, 32), "hidden": 64}
DEFAULT_OPTIM = dict(name="adam", lr=1e-3, momentum=0.9, weight_decay=0.0, schedule="constant",
                     milestones=(), gamma=0.1, warmup_epochs=0)


def rotations(x: jnp.ndarray) -> jnp.ndarray:
  """[B,H,W,C] → [4,B,H,W,C]: rotations by 0°, 90°, 180°, 270° (labels 0..3)."""
  return jnp.stack([jnp.rot90(x, k, axes=(1, 2)) for k in range(NUM_ROTATIONS)])


def rotation_loss(logits: jnp.ndarray) -> jnp.ndarray:
  """[4,B,4] rotation logits → [B] mean cross-entropy over the four rotations."""
  labels = jnp.broadcast_to(jnp.arange(NUM_ROTATIONS)[:, None], logits.shape[:2])
  ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)
  return jnp.mean(ce, axis=0)


def _pretext_losses(state, x, rng):
  """map_chunks function: per-image pretext loss in inference mode (make_batches.py)."""
  del rng
  xr = rotations(x)
  logits = state(xr.reshape((-1,) + x.shape[1:]))[0]
  return rotation_loss(logits.reshape(NUM_ROTATIONS, x.shape[0], -1))


def _least_confidence(state, x, rng):
  """1 − max softmax of the classifier (PT4AL's top-1 confidence sampling, lowest first)."""
  del rng
  return 1.0 - jax.nn.softmax(state(x)[0].astype(jnp.float32)).max(-1)


class _PretextState(train_state.TrainState):
  batch_stats: Any = None


@ACQUISITIONS.register("pt4al")
class PT4AL(Acquisition):
  """Batch-mode PT4AL selector.

  Args:
    num_batches: batches the loss-ordered pool is split into (PT4AL: one per cycle).
    model: registered classifier used for the pretext task (4 outputs).
    model_kwargs: its options.
    epochs: pretext training epochs over all images (15, the authors' corrected rotation.py).
    batch_size: images per pretext step (each seen in its 4 rotations).
    optim: pretext optimiser settings (`al_jax.optim.make_optimizer` fields).
    initial: "batch0" — the initial pool is batch 0 at even intervals (PT4AL's first cycle);
      "random" — the harness's random pool (shared with the other methods of a study).
  """
  name = "pt4al"
  kind = "select"

  @staticmethod
  def check_config(settings: Dict[str, Any], config) -> None:
    """The selection after cycle k reads batch k + 1 (batch 0 is the initial pool or unused),
    so a run of C cycles needs at least C batches (PT4AL main.py: one batch per cycle)."""
    cycles, n = int(config.al.cycles), int(settings["num_batches"])
    if cycles > n:
      raise ALError(f"acquisition_kwargs.num_batches={n}: pt4al selects from batch k + 1 "
                    f"after cycle k, so {cycles} cycles need at least {cycles} batches")

  def __init__(self, num_batches: int = 10, model: str = "small_cnn",
               model_kwargs: Optional[Dict[str, Any]] = None, epochs: int = PRETEXT_EPOCHS,
               batch_size: int = 256, optim: Optional[Dict[str, Any]] = None,
               initial: str = "batch0", **kwargs):
    super().__init__(**kwargs)
    if initial not in ("batch0", "random"):
      raise ALError(f"pt4al initial must be batch0 or random, got {initial!r}")
    self.initial = initial
    if num_batches < 2:
      raise ALError(f"pt4al needs at least 2 batches, got {num_batches}")
    if epochs <= 0 or batch_size <= 0:
      raise ALError(f"pt4al epochs and batch_size must be positive, got {epochs}, {batch_size}")
    self.num_batches = int(num_batches)
    if model_kwargs is None:
      model_kwargs = DEFAULT_MODEL_KWARGS if model == "small_cnn" else {}
    self.model = get_model(model, NUM_ROTATIONS, **dict(model_kwargs))
    self.epochs = int(epochs)
    self.batch_size = int(batch_size)
    cfg = dict(DEFAULT_OPTIM)
    unknown = sorted(set(optim or {}) - set(cfg) - {"nesterov", "b1", "b2", "grad_clip"})
    if unknown:
      raise ALError(f"pt4al optim got unknown settings: {unknown}")
    cfg.update(optim or {})
    self.optim_cfg = ml_collections.ConfigDict(cfg)
    self.tx = optim_lib.make_optimizer(self.optim_cfg)
    self._orders: Dict[Any, Any] = {}

  # --- the pretext model --------------------------------------------------------------------
  def _apply(self, variables, x, train=False, dropout=None, rngs=None):
    return self.model.apply(variables, x, train=train, dropout=dropout, rngs=rngs)

  @functools.partial(jax.jit, static_argnames=("self", "prep"), donate_argnums=1)
  def _step(self, state, x_all, idx, mask, rng, prep):
    rng = jax.random.fold_in(rng, state.step)
    x = prep.eval(x_all[idx])  # no augmentation: rotation.py trains on test transforms
    xr = rotations(x).reshape((-1,) + x.shape[1:])
    w = jnp.tile(mask, NUM_ROTATIONS)

    def loss_fn(params):
      (logits, _), upd = self.model.apply(
          {"params": params, "batch_stats": state.batch_stats}, xr, train=True,
          rngs={"dropout": rng}, mutable=["batch_stats"])
      labels = jnp.repeat(jnp.arange(NUM_ROTATIONS), x.shape[0])
      ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
      return jnp.sum(ce * w) / jnp.maximum(jnp.sum(w), 1.0), upd["batch_stats"]

    (loss, stats), g = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    return state.apply_gradients(grads=g, batch_stats=stats), loss

  def fit_pretext(self, x_all, prep, key) -> ModelState:
    """Trains the rotation model on every image of `x_all`; deterministic for `key`."""
    if x_all.shape[1] != x_all.shape[2]:
      raise ALError(f"pt4al rotations need square images, got {x_all.shape[1:3]}")
    k_init, k_train, k_perm = jax.random.split(key, 3)
    variables = self.model.init({"params": k_init, "dropout": k_init},
                                prep.eval(x_all[:1]), train=False)
    state = _PretextState.create(apply_fn=self._apply, params=variables["params"],
                                 batch_stats=variables.get("batch_stats", {}), tx=self.tx)
    n = x_all.shape[0]
    b = min(self.batch_size, n)
    steps = math.ceil(n / b)
    seed = int(jax.random.randint(k_perm, (), 0, 2**31 - 1))
    for epoch in range(self.epochs):
      lr = optim_lib.lr_at_epoch(self.optim_cfg, epoch, self.epochs)
      state = state.replace(opt_state=optim_lib.set_learning_rate(state.opt_state, lr))
      rs = np.random.default_rng([seed, epoch])
      # Fixed-shape steps: the last batch is padded with the next permutation, masked.
      pos = np.concatenate([rs.permutation(n), rs.permutation(n)])[:steps * b]
      mask = (np.arange(steps * b) < n).astype(np.float32)
      for s in range(steps):
        state, loss = self._step(state, x_all, jnp.asarray(pos[s * b:(s + 1) * b], jnp.int32),
                                 jnp.asarray(mask[s * b:(s + 1) * b]), k_train, prep)
      if not np.isfinite(float(loss)):
        raise ALError(f"pt4al pretext loss is non-finite at epoch {epoch + 1}")
    return ModelState(apply_fn=self._apply,
                      variables={"params": state.params, "batch_stats": state.batch_stats})

  def ordering(self, ctx, key):
    """(indices of `ctx.x_all` by descending pretext loss, ties by index; the losses).

    Fitted once per (key, data) and cached.
    """
    cache_key = (np.asarray(jax.random.key_data(key)).tobytes(), tuple(ctx.x_all.shape),
                 ctx.prep)
    if cache_key not in self._orders:
      pretext = self.fit_pretext(ctx.x_all, ctx.prep, key)
      idx = np.arange(ctx.x_all.shape[0])
      losses = np.asarray(map_chunks(_pretext_losses, pretext, ctx.x_all, idx, ctx.prep,
                                     ctx.chunk_size), np.float64)
      # Sorted as numbers (the public code sorts the losses' strings).
      self._orders[cache_key] = (idx[np.lexsort((idx, -losses))], losses)
    return self._orders[cache_key]

  # --- selection ----------------------------------------------------------------------------
  def _batch(self, order, b):
    size = math.ceil(len(order) / self.num_batches)
    return order[b * size:(b + 1) * size]

  def initial_pool(self, ctx, size):
    """Batch 0 (highest pretext loss) at even intervals: its points j·⌊|batch|/size⌋."""
    if self.initial == "random":
      return None
    if ctx.run_rng is None:
      raise ALError("pt4al's initial pool needs the run's key (SelectContext.run_rng)")
    order, _ = self.ordering(ctx, jax.random.fold_in(ctx.run_rng, _PRETEXT_STREAM))
    batch = self._batch(order, 0)
    if size > len(batch):
      raise ALError(f"pt4al batch 1 holds {len(batch)} points, fewer than the initial pool "
                    f"{size}; use fewer batches or a smaller al.initial")
    return batch[np.arange(size) * (len(batch) // size)]

  def select(self, ctx, budget, rng):
    key = ctx.run_rng if ctx.run_rng is not None else rng
    order, _ = self.ordering(ctx, jax.random.fold_in(key, _PRETEXT_STREAM))
    b = ctx.cycle + 1  # the batch of the cycle that will train on the selection
    if b >= self.num_batches:
      raise ALError(f"pt4al has {self.num_batches} batches but the selection after cycle "
                    f"{ctx.cycle + 1} needs batch {b + 1}; set acquisition_kwargs.num_batches "
                    "to the number of cycles")
    batch = self._batch(order, b)
    cand = np.sort(batch[np.isin(batch, ctx.candidates)])
    if len(cand) < budget:
      raise ALError(f"pt4al batch {b + 1} holds {len(cand)} unlabeled candidates, fewer than "
                    f"the budget {budget}; use fewer batches or a smaller budget")
    scores = ctx.map_chunks(_least_confidence, cand)
    return top_k(scores, cand, budget)

