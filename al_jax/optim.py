"""Optax chains and schedules built from config, plus the WGAN weight-clipping transform."""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from al_jax import ALError


def cosine_7_16(epoch: int, total_epochs: int) -> float:
  """FixMatch's cos(7π·e / 16·E), clipped at 0 (kekmodel/FixMatch-pytorch's
  get_cosine_schedule_with_warmup with num_cycles 7/16), stepped per epoch."""
  return max(0.0, math.cos(7.0 * math.pi * epoch / (16.0 * max(1, total_epochs))))


def lr_at_epoch(cfg, epoch: int, total_epochs: int) -> float:
  """Learning rate for a whole epoch (PyTorch's per-epoch `scheduler.step()`, as the papers' code).

  cfg fields: lr, schedule ('constant' | 'step' | 'cosine' | 'cosine_7_16'), milestones (epochs,
  for 'step'), gamma (factor at each milestone), warmup_epochs (linear warm-up).
  Schedules are per epoch and injected into the optimizer state by the loop, so the
  jit-compiled step never changes when the labeled set (and so steps per epoch) grows.
  """
  lr = float(cfg.lr)
  name = cfg.get("schedule", "constant")
  warm = int(cfg.get("warmup_epochs", 0))
  if epoch < warm:
    return lr * (epoch + 1) / warm
  if name == "constant":
    return lr
  if name == "step":
    hits = sum(1 for m in cfg.get("milestones", ()) if epoch >= m)
    return lr * cfg.get("gamma", 0.1) ** hits
  if name == "cosine":
    span = max(1, total_epochs - warm)
    return lr * 0.5 * (1.0 + math.cos(math.pi * (epoch - warm) / span))
  if name == "cosine_7_16":
    # The per-epoch rates the `fixmatch` objective applies itself, for a supervised learner
    # trained on FixMatch's schedule.
    return lr * cosine_7_16(epoch - warm, total_epochs - warm)
  raise ALError(f"unknown schedule {name!r}; valid: constant, cosine, cosine_7_16, step")


def _chain(name: str, learning_rate, momentum, nesterov, weight_decay, b1, b2, grad_clip):
  parts = []
  if grad_clip:
    parts.append(optax.clip_by_global_norm(grad_clip))
  if name == "sgd":
    # PyTorch-style L2 weight decay added to the gradient, as the papers' official code.
    if weight_decay:
      parts.append(optax.add_decayed_weights(weight_decay))
    parts.append(optax.sgd(learning_rate, momentum=momentum or None, nesterov=nesterov))
  elif name == "adam":
    if weight_decay:
      parts.append(optax.add_decayed_weights(weight_decay))
    parts.append(optax.adam(learning_rate, b1=b1, b2=b2))
  elif name == "adamw":
    parts.append(optax.adamw(learning_rate, b1=b1, b2=b2, weight_decay=weight_decay))
  return optax.chain(*parts)


OPTIMIZERS = ("adam", "adamw", "sgd")


def make_optimizer(cfg, extra=()) -> optax.GradientTransformation:
  """One optax chain from config, with the learning rate injectable per epoch.

  cfg fields: name ('sgd' | 'adam' | 'adamw'), lr, momentum, nesterov,
  weight_decay, b1, b2, grad_clip (global norm, 0 = off). `extra` transforms are
  chained after the optimizer (e.g. `clip_params`, which must come last).
  """
  if cfg.name not in OPTIMIZERS:
    raise ALError(f"unknown optimizer {cfg.name!r}; valid: {', '.join(OPTIMIZERS)}")
  name = cfg.name

  def factory(learning_rate):
    return optax.chain(
        _chain(name, learning_rate, cfg.get("momentum", 0.9), cfg.get("nesterov", False),
               cfg.get("weight_decay", 0.0), cfg.get("b1", 0.9), cfg.get("b2", 0.999),
               cfg.get("grad_clip", 0.0)),
        *extra)

  return optax.inject_hyperparams(factory)(learning_rate=float(cfg.lr))


def set_learning_rate(opt_state, lr: float):
  """Returns `opt_state` (from `make_optimizer`) with its learning rate replaced."""
  hp = dict(opt_state.hyperparams)
  hp["learning_rate"] = jnp.asarray(lr, dtype=jnp.asarray(hp["learning_rate"]).dtype)
  return opt_state._replace(hyperparams=hp)


class ClipParamsState(NamedTuple):
  """No state: clipping depends only on the current parameters."""


def clip_params(c: float) -> optax.GradientTransformation:
  """Keeps every parameter in [-c, c] after the update (WGAN, Arjovsky et al. 2017, Alg. 1).

  Like `optax.keep_params_nonnegative`, it rewrites the update so that
  `params + update` lands inside the box, so it must come last in the chain.
  Updates of parameters that stay strictly inside the box are unchanged.
  """
  if c <= 0:
    raise ValueError(f"clip bound must be positive, got {c}")

  def init_fn(params):
    del params
    return ClipParamsState()

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError("clip_params needs params: call update(updates, state, params)")
    def one(u, p):
      new = p + u
      # Only rewrite where the box is left, so inside updates stay bit-identical.
      return jnp.where(jnp.abs(new) > c, jnp.clip(new, -c, c) - p, u)
    return jax.tree_util.tree_map(one, updates, params), state

  return optax.GradientTransformation(init_fn, update_fn)
