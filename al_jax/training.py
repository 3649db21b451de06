"""The loop's trainer: epochs, batches, the jitted step, early stopping, initial-model trials.

One `Trainer` per run. It owns the objective's jitted step (one compilation per run) and
every host-side draw of training data, each keyed by (seed, purpose, cycle[, trial], epoch)
so that a resumed run redraws exactly what an uninterrupted one would.

PRNG convention: the loop hands `objective.train_step` a per-step key,
`fold_in(cycle_key, state.step)`, folded inside the jitted step; objectives split it by
purpose and never fold the step themselves.
"""

import math
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from al_jax import ALError
from al_jax import acquisition as acq_lib
from al_jax import metrics as metrics_lib
from al_jax import progress as progress_lib
from al_jax.data import Pool

# Host-side numpy streams, one per purpose (the loop module holds the others):
# batches of labeled / unlabeled data.
_LABELED, _UNLABELED = 1, 2
# Fold-in constant of the extra initial-model trials' keys (trial 0 keeps the cycle's keys).
TRIAL_STREAM = 1009


def epoch_batches(n_labeled: int, batch_size: int, min_steps: int,
                  rng: np.random.Generator):
  """Labeled batch positions for one epoch, as [steps, B] positions and masks.

  An epoch visits every labeled point once in a random order; the last batch is
  padded with points from the next permutation and masked out of the loss, so
  every step has the same shape (one compilation for the whole run). When
  `min_steps` asks for more steps than that (few labels, SSL), every slot is real.
  """
  natural = math.ceil(n_labeled / batch_size)
  steps = max(natural, min_steps)
  slots = steps * batch_size
  reps = math.ceil(slots / n_labeled)
  pos = np.concatenate([rng.permutation(n_labeled) for _ in range(reps)])[:slots]
  real = n_labeled if steps == natural else slots
  mask = (np.arange(slots) < real).astype(np.float32)
  return pos.reshape(steps, batch_size), mask.reshape(steps, batch_size)


def _logits(state, x, rng):
  del rng
  return state(x)[0]


class Trainer:
  """Trains one model per cycle (or per initial-model trial) and evaluates models.

  Args:
    config: the run's resolved config.
    data: the run's `al_jax.loop.RunData` (arrays on device, preprocessing, data parallel).
    objective: the built objective.
    k_init, k_train: the run's initialisation and training keys (folded with the cycle here).
    log: logging function.
    progress: optional progress display for the steps of a cycle.
    on_epoch: `on_epoch(global_epoch, metrics)` after every epoch (TensorBoard).
  """

  def __init__(self, config, data, objective, k_init: jax.Array, k_train: jax.Array,
               log: Callable[[str], None], progress: Optional[progress_lib.Progress] = None,
               on_epoch: Optional[Callable[[int, Dict[str, float]], None]] = None):
    self.config = config
    self.data = data
    self.objective = objective
    self.k_init, self.k_train = k_init, k_train
    self.log = log
    self.progress = progress
    self.on_epoch = on_epoch
    self.step = jax.jit(self._train_step, donate_argnums=0)
    self.compiles = 0
    self.steps_run = 0  # train steps dispatched, over the run (the cost's steps per second)
    self.epoch_means: List[Dict[str, float]] = []

  def _train_step(self, state, x_all, y_visible, lab_idx, lab_mask, unl_idx, rng):
    self.compiles += 1  # Python side effect: runs once per trace, counts compilations
    labeled = {"x": x_all[lab_idx], "y": y_visible[lab_idx], "mask": lab_mask}
    unlabeled = {"x": x_all[unl_idx]} if self.objective.uses_unlabeled else None
    # The per-step key (flax wmt / big_vision): the cycle's key folded with the step counter,
    # so every step draws fresh augmentations and noise without a host round-trip.
    return self.objective.train_step(state, labeled, unlabeled,
                                     jax.random.fold_in(rng, state.step))

  def init_state(self, cycle: int):
    """The untrained model of a cycle (trial 0's initialisation)."""
    return self.objective.init(jax.random.fold_in(self.k_init, cycle), self.data.x_train[:1])

  # --- one cycle's model -----------------------------------------------------------------
  def train(self, cycle: int, pool: Pool, prev_state=None, trial: int = 0):
    """Trains from scratch (or warm-starts) on the pool's labeled set; returns the state.

    `trial` > 0 draws another initialisation and batch order (initial-model trials)."""
    cfg = self.config
    tr = cfg.train
    k_init = jax.random.fold_in(self.k_init, cycle)
    k_train = jax.random.fold_in(self.k_train, cycle)
    if trial:
      k_init = jax.random.fold_in(k_init, TRIAL_STREAM + trial)
      k_train = jax.random.fold_in(k_train, TRIAL_STREAM + trial)
    stream = [cycle] if not trial else [cycle, TRIAL_STREAM + trial]
    self.epoch_means = []  # this training's per-epoch metric means (al_jax.health)
    state = self.objective.init(k_init, self.data.x_train[:1])
    if tr.warm_start and prev_state is not None:
      # Copy: the jitted step donates its input buffers, and prev_state is still
      # needed (checkpoint, TOD's previous-cycle model).
      state = self.objective.warm_start(jax.tree_util.tree_map(jnp.copy, prev_state), state)
    if self.data.dp is not None:
      state = self.data.dp.replicate(state)
    y_visible = self.data.put(pool.visible_labels())
    k_cycle = self.data.put(k_train)
    # Steps per epoch are fixed within a cycle (epoch_batches), so the total is known.
    steps = max(math.ceil(pool.num_labeled / tr.batch_size), tr.min_steps_per_epoch)
    label = f"cycle {cycle + 1}/{cfg.al.cycles} train" + (f" (trial {trial + 1})" if trial else "")
    task = (self.progress.task(label, tr.epochs * steps) if self.progress is not None else None)
    try:
      return self._train_epochs(cycle, pool, state, y_visible, k_cycle, task, stream)
    finally:
      if task is not None:
        task.close()

  def _epoch_indices(self, pool: Pool, stream: List[int], epoch: int):
    """One epoch's [steps, B] labeled positions and masks and [steps, Bu] unlabeled indices,
    on device (batch axis sharded under data parallel): one transfer per epoch."""
    cfg, tr, data = self.config, self.config.train, self.data
    labeled, unlabeled = pool.labeled, pool.unlabeled
    # A full-label reference run has no unlabeled points: SSL terms then see the training
    # images (labels hidden from them as always).
    unl_source = unlabeled if len(unlabeled) else labeled
    rs = np.random.default_rng([cfg.seed, _LABELED, *stream, epoch])
    pos, mask = epoch_batches(len(labeled), tr.batch_size, tr.min_steps_per_epoch, rs)
    lab_idx = data.put_batch(labeled[pos].astype(np.int32), axis=1)
    masks = data.put_batch(mask, axis=1)
    if self.objective.uses_unlabeled:
      # Drawn with replacement across and within steps (a fixed-shape [steps, Bu] draw).
      ru = np.random.default_rng([cfg.seed, _UNLABELED, *stream, epoch])
      unl = ru.choice(unl_source, (len(pos), tr.unlabeled_batch_size)).astype(np.int32)
    else:
      unl = np.zeros((len(pos), data.dp.size if data.dp else 1), np.int32)
    return len(pos), lab_idx, masks, data.put_batch(unl, axis=1)

  def _train_epochs(self, cycle, pool, state, y_visible, k_cycle, task, stream):
    cfg = self.config
    tr = cfg.train
    best: Optional[Tuple[float, object, int]] = None
    for epoch in range(tr.epochs):
      steps, lab_idx, masks, unl = self._epoch_indices(pool, stream, epoch)
      state = self.objective.start_epoch(state, epoch)
      sums = None
      pending = []  # steps dispatched but not yet finished: the bar counts finished ones
      for s in range(steps):
        state, m = self.step(state, self.data.x_dev, y_visible, lab_idx[s], masks[s], unl[s],
                             k_cycle)
        sums = m if sums is None else jax.tree_util.tree_map(jnp.add, sums, m)
        if task is not None:
          # Polling readiness keeps dispatch asynchronous (no sync per step).
          pending.append(jax.tree_util.tree_leaves(m)[0])
          done = 0
          while done < len(pending) and pending[done].is_ready():
            done += 1
          task.update(done)
          del pending[:done]
      self.steps_run += steps
      means = {k: float(v) / steps for k, v in sums.items()}
      self.epoch_means.append(means)
      if task is not None:
        task.update(len(pending))
        task.set_postfix(f"epoch {epoch + 1}/{tr.epochs} "
                         + " ".join(f"{k} {v:.4f}" for k, v in sorted(means.items())))
      if self.on_epoch is not None:
        self.on_epoch(cycle * tr.epochs + epoch, means)
      if not all(math.isfinite(v) for v in means.values()):
        bad = [k for k, v in means.items() if not math.isfinite(v)]
        raise ALError(f"non-finite {', '.join(bad)} at cycle {cycle + 1}/{cfg.al.cycles} "
                      f"epoch {epoch + 1}; "
                      "finished cycles are kept; try a lower learning rate")
      if len(self.data.val_idx) and tr.early_stopping:
        acc = self.evaluate(state, self.data.x_val, self.data.y_val)["accuracy"]
        if best is None or acc > best[0]:
          best = (acc, jax.tree_util.tree_map(jnp.copy, state), epoch)
        if self.on_epoch is not None:
          self.on_epoch(cycle * tr.epochs + epoch, {"val_accuracy": acc})
        patience = tr.get("early_stopping_patience", 0)
        if patience and epoch - best[2] >= patience:
          self.log(f"cycle {cycle + 1}/{cfg.al.cycles} | no validation improvement for "
                   f"{patience} epochs: stopping at epoch {epoch + 1}")
          break
      if (epoch + 1) % max(1, cfg.log_every) == 0 or epoch + 1 == tr.epochs:
        self.log(f"cycle {cycle + 1}/{cfg.al.cycles} | labeled {pool.num_labeled} | "
                 f"epoch {epoch + 1}/{tr.epochs} | "
                 + " | ".join(f"{k} {v:.4f}" for k, v in sorted(means.items())))
    if best is not None:
      self.log(f"cycle {cycle + 1}/{cfg.al.cycles} | early stopping: best validation accuracy {best[0]:.4f} "
               f"at epoch {best[2] + 1}")
      state = best[1]
    return state

  def train_initial(self, pools: Sequence[Pool]):
    """CRC §4.1: cycle 0 trains one model per trial — on `pools[t]` with trial t's
    initialisation and batch order — and keeps the one of median validation accuracy (ties:
    the lower trial). Returns (state, validation accuracies, the picked trial)."""
    states, accs = [], []
    for t, pool in enumerate(pools):
      states.append(self.train(0, pool, None, trial=t))
      accs.append(self.evaluate(states[-1], self.data.x_val, self.data.y_val)["accuracy"])
    order = np.lexsort((np.arange(len(pools)), accs))
    pick = int(order[(len(pools) - 1) // 2])
    self.log(f"cycle 1/{self.config.al.cycles} | initial-model trials: validation accuracy "
             + ", ".join(f"{a:.4f}" for a in accs) + f"; median: trial {pick + 1}")
    return states[pick], accs, pick

  # --- evaluation ------------------------------------------------------------------------
  def evaluate(self, state, x: np.ndarray, y: np.ndarray) -> Dict[str, float]:
    """Classification metrics of the model on (x, y), in fixed-size chunks."""
    data = self.data
    mstate = self.objective.model_state(state)
    x_dev = data.x_test_dev if x is data.dataset.x_test else data.put(x)
    logits = acq_lib.map_chunks(_logits, mstate, x_dev, np.arange(len(y)), data.prep,
                                self.config.eval.chunk_size, dp=data.dp)
    return metrics_lib.to_host(metrics_lib.classification_metrics(
        jnp.asarray(logits), jnp.asarray(y), self.config.eval.ece_bins))
