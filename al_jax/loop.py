"""The active-learning loop: train → evaluate → score → select → label, with resume.

Cycle K trains a model on the labeled set of cycle K (written to
`pools/cycle_K.npy`), evaluates it on the test set, selects `budget` new points
(except after the last cycle), appends one row to `results.jsonl` and saves a
checkpoint holding the model state and the AL state (next labeled set, cycle).
A killed run restarted with resume=True continues after the last checkpoint and,
because every random draw is keyed by (seed, purpose, cycle, epoch), produces
the same results as an uninterrupted run.
"""

import logging
import math
import os
import time
from typing import Any, Callable, Dict, List, Optional

import jax
import jax.numpy as jnp
import numpy as np
from al_jax import ALError
from al_jax import acquisition as acq_lib
from al_jax import diagnostics as diag_lib
from al_jax import metrics as metrics_lib
from al_jax import objectives as obj_lib
from al_jax import parallel
from al_jax import progress as progress_lib
from al_jax import results as results_lib
from al_jax.data import DATASETS, Pool, Preprocess
from al_jax.models import get_model

# Host-side numpy streams, one per purpose: batches of labeled / unlabeled data,
# the initial pool and the validation split.
_LABELED, _UNLABELED, _INITIAL, _VALIDATION, _DIAGNOSTICS = 1, 2, 3, 4, 5
# Fold-in constant of the extra initial-model trials' keys (trial 0 keeps the cycle's keys).
_TRIAL = 1009
# Probe size of the loss-estimation diagnostics (a random subset of the unlabeled pool).
DIAGNOSTICS_PROBE = 2000

logger = logging.getLogger("al_jax")


def _to_dict(config) -> Dict[str, Any]:
  return config.to_dict() if hasattr(config, "to_dict") else dict(config)


def check_settings(config) -> None:
  """Checks the settings that need no data: sizes positive, seeds and counts non-negative."""
  al, tr = config.al, config.train
  for name, v in (("cycles", al.cycles), ("epochs", tr.epochs), ("initial", al.initial),
                  ("budget", al.budget), ("batch_size", tr.batch_size),
                  ("unlabeled_batch_size", tr.unlabeled_batch_size),
                  ("eval.chunk_size", config.eval.chunk_size)):
    if v <= 0:
      raise ALError(f"{name} must be positive, got {v}")
  # numpy's seed sequences and the pools' random streams take non-negative integers only.
  for name, v in (("seed", config.seed), ("al.subset", al.subset), ("al.val_size", al.val_size),
                  ("train.min_steps_per_epoch", tr.min_steps_per_epoch)):
    if v < 0:
      raise ALError(f"{name} must be non-negative, got {v}")
  if al.get("full_labels", False) and al.cycles != 1:
    raise ALError(f"al.full_labels trains one reference model on every label: set "
                  f"al.cycles=1 (got {al.cycles})")
  if tr.get("initial_trials", 1) > 1 and al.val_size <= 0:
    raise ALError("train.initial_trials > 1 keeps the median model on the validation split: "
                  "set al.val_size")


def validate(config, num_train: int) -> None:
  """Checks the AL schedule against the pool before any work is done."""
  check_settings(config)
  al = config.al
  if al.get("full_labels", False):
    return
  need = al.initial + al.budget * (al.cycles - 1)
  if al.initial > num_train:
    raise ALError(f"initial pool {al.initial} is larger than the {num_train}-point pool")
  if need > num_train:
    raise ALError(f"initial {al.initial} + budget {al.budget} × {al.cycles - 1} cycles = "
                  f"{need} labels, more than the {num_train}-point pool")


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


class ActiveLearner:
  """Builds every component from a config and runs the cycles.

  Args:
    config: resolved ConfigDict (see experiments/configs).
    workdir: output directory; None keeps everything in memory (tests, notebooks).
    log: logging function.
    progress: an `al_jax.progress.Progress` for bars or periodic lines within a cycle
      (training steps, scoring chunks); None shows only the per-epoch and per-cycle lines.
    tensorboard: write TensorBoard event files to `<workdir>/tensorboard` (needs a workdir).
  """

  def __init__(self, config, workdir: Optional[str] = None,
               log: Callable[[str], None] = logger.info,
               progress: Optional[progress_lib.Progress] = None, tensorboard: bool = False):
    self.config = config
    self.log = log
    self.progress = progress
    if tensorboard and not workdir:
      raise ALError("tensorboard event files need a workdir")
    self.tensorboard = tensorboard
    self.tb: Optional[progress_lib.TensorBoardWriter] = None
    self.workdir = results_lib.Workdir(workdir) if workdir else None
    ds = DATASETS.get(config.dataset)(data_dir=config.get("data_dir") or None, seed=config.seed)
    self.dataset = ds
    x, y = ds.x_train, ds.y_train
    if config.seed < 0:  # before the validation split draws with it
      raise ALError(f"seed must be non-negative, got {config.seed}")
    self.val_idx = np.zeros(0, np.int64)
    if config.al.val_size > 0:
      # A held-out labeled split carved from the train set for early stopping (CRC §4):
      # never the test set. It is removed from the pool, so it is never selected.
      rs = np.random.default_rng([config.seed, _VALIDATION])
      perm = rs.permutation(len(y))
      self.val_idx = np.sort(perm[:config.al.val_size])
      keep = np.sort(perm[config.al.val_size:])
      self.x_val, self.y_val = x[self.val_idx], y[self.val_idx]
      x, y = x[keep], y[keep]
    copies = config.al.get("pool_copies", 1)
    if copies < 1:
      raise ALError(f"al.pool_copies must be ≥ 1, got {copies}")
    if copies > 1:
      # A repeated pool: image i is also at i + N, i + 2N, ... (CRC Proposition 2 checks
      # that an acquisition never queries such a copy when a distinct image is available).
      x, y = np.concatenate([x] * copies), np.concatenate([y] * copies)
    self.x_train, self.y_train = x, y
    validate(config, len(y))
    self.prep = Preprocess.for_dataset(ds, augment=config.train.augment,
                                       crop_pad=config.train.crop_pad, flip=config.train.flip)
    model = get_model(config.model.name, ds.num_classes, **_to_dict(config.model.kwargs))
    obj_cls = obj_lib.OBJECTIVES.get(config.objective)
    acq_cls = acq_lib.ACQUISITIONS.get(config.acquisition)
    try:
      self.objective = obj_cls(
          model=model, prep=self.prep, num_classes=ds.num_classes, optim_cfg=config.optim,
          epochs=config.train.epochs, **_to_dict(config.objective_kwargs))
      self.acquisition = acq_cls(**_to_dict(config.acquisition_kwargs))
    except TypeError as e:  # unknown objective_kwargs / acquisition_kwargs
      raise ALError(str(e).splitlines()[0]) from None
    root = jax.random.PRNGKey(config.seed)
    self.k_init, self.k_train, self.k_acq = jax.random.split(root, 3)
    # Data parallel over all local devices when there are several (parallel.devices=0),
    # batch axis sharded; a no-op on one device.
    self.dp = parallel.maybe_data_parallel(config.parallel.devices)
    if self.dp is not None:
      self.dp.check_divisible("train.batch_size", config.train.batch_size)
      self.dp.check_divisible("train.unlabeled_batch_size", config.train.unlabeled_batch_size)
      self.dp.check_divisible("eval.chunk_size", config.eval.chunk_size)
    self.x_dev = self._put(self.x_train)
    self.x_test_dev = self._put(ds.x_test)
    self._step = jax.jit(self._train_step, donate_argnums=0)
    self.compiles = 0
    self.diagnostics: Dict[int, Dict[str, Any]] = {}

  def _put(self, x):
    """Replicated over the data-parallel mesh, or plain on the default device."""
    return self.dp.replicate(x) if self.dp is not None else jnp.asarray(x)

  def _put_batch(self, x, axis: int = 0):
    return self.dp.shard(x, axis) if self.dp is not None else jnp.asarray(x)

  # --- training --------------------------------------------------------------------------
  def _train_step(self, state, x_all, y_visible, lab_idx, lab_mask, unl_idx, rng):
    self.compiles += 1  # Python side effect: runs once per trace, counts compilations
    labeled = {"x": x_all[lab_idx], "y": y_visible[lab_idx], "mask": lab_mask}
    unlabeled = {"x": x_all[unl_idx]} if self.objective.uses_unlabeled else None
    # The per-step key (flax wmt / big_vision): the objective contract's `rng`.
    return self.objective.train_step(state, labeled, unlabeled,
                                     jax.random.fold_in(rng, state.step))

  def initial_pool(self) -> Pool:
    """Depends only on (seed, dataset, size): every method of a study shares it (paired design),
    unless the acquisition defines its own (PT4AL's first pretext batch)."""
    al = self.config.al
    if al.get("full_labels", False):
      # Reference run (ARAL §4 "full training of our model"): every training point labeled.
      return Pool(self.y_train, np.arange(len(self.y_train)))
    ctx = acq_lib.SelectContext(state=None, x_all=self.x_dev, labeled=np.zeros(0, np.int64),
                                candidates=np.arange(len(self.y_train)), prep=self.prep,
                                chunk_size=self.config.eval.chunk_size, dp=self.dp,
                                run_rng=self.k_acq)
    own = self.acquisition.initial_pool(ctx, al.initial)
    if own is not None:
      if al.class_balanced:
        raise ALError(f"acquisition {self.config.acquisition!r} chooses its own initial pool; "
                      "set al.class_balanced=False")
      return Pool(self.y_train, np.sort(np.asarray(own, np.int64)))
    return Pool.initial(self.y_train, al.initial,
                        np.random.default_rng([self.config.seed, _INITIAL]),
                        class_balanced=al.class_balanced, num_classes=self.dataset.num_classes)

  def train(self, cycle: int, pool: Pool, prev_state=None, trial: int = 0):
    """Trains from scratch (or warm-starts) on the pool's labeled set; returns the state.

    `trial` > 0 draws another initialisation and batch order (initial-model trials)."""
    cfg = self.config
    tr = cfg.train
    k_init = jax.random.fold_in(self.k_init, cycle)
    k_train = jax.random.fold_in(self.k_train, cycle)
    if trial:
      k_init = jax.random.fold_in(k_init, _TRIAL + trial)
      k_train = jax.random.fold_in(k_train, _TRIAL + trial)
    stream = [cycle] if not trial else [cycle, _TRIAL + trial]
    state = self.objective.init(k_init, self.x_train[:1])
    if tr.warm_start and prev_state is not None:
      # Copy: the jitted step donates its input buffers, and prev_state is still
      # needed (checkpoint, TOD's previous-cycle model).
      state = self.objective.warm_start(jax.tree_util.tree_map(jnp.copy, prev_state), state)
    if self.dp is not None:
      state = self.dp.replicate(state)
    y_visible = self._put(pool.visible_labels())
    k_cycle = self._put(k_train)
    # Steps per epoch are fixed within a cycle (epoch_batches), so the total is known.
    steps = max(math.ceil(pool.num_labeled / tr.batch_size), tr.min_steps_per_epoch)
    label = f"cycle {cycle + 1}/{cfg.al.cycles} train" + (f" (trial {trial + 1})" if trial else "")
    task = (self.progress.task(label, tr.epochs * steps) if self.progress is not None else None)
    try:
      return self._train_epochs(cycle, pool, state, y_visible, k_cycle, task, stream)
    finally:
      if task is not None:
        task.close()

  def _train_epochs(self, cycle, pool, state, y_visible, k_cycle, task, stream):
    cfg = self.config
    tr = cfg.train
    labeled, unlabeled = pool.labeled, pool.unlabeled
    # A full-label reference run has no unlabeled points: SSL terms then see the training
    # images (labels hidden from them as always).
    unl_source = unlabeled if len(unlabeled) else labeled
    best = None
    for epoch in range(tr.epochs):
      rs = np.random.default_rng([cfg.seed, _LABELED, *stream, epoch])
      pos, mask = epoch_batches(len(labeled), tr.batch_size, tr.min_steps_per_epoch, rs)
      # One transfer per epoch; [steps, B] with the batch axis sharded under data parallel.
      lab_idx = self._put_batch(labeled[pos].astype(np.int32), axis=1)
      masks = self._put_batch(mask, axis=1)
      if self.objective.uses_unlabeled:
        ru = np.random.default_rng([cfg.seed, _UNLABELED, *stream, epoch])
        unl = ru.choice(unl_source, (len(pos), tr.unlabeled_batch_size)).astype(np.int32)
      else:
        unl = np.zeros((len(pos), self.dp.size if self.dp else 1), np.int32)
      unl = self._put_batch(unl, axis=1)
      state = self.objective.start_epoch(state, epoch)
      sums = None
      pending = []  # steps dispatched but not yet finished: the bar counts finished ones
      for s in range(len(pos)):
        state, m = self._step(state, self.x_dev, y_visible, lab_idx[s], masks[s], unl[s],
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
      means = {k: float(v) / len(pos) for k, v in sums.items()}
      if task is not None:
        task.update(len(pending))
        task.set_postfix(f"epoch {epoch + 1}/{tr.epochs} "
                         + " ".join(f"{k} {v:.4f}" for k, v in sorted(means.items())))
      if self.tb is not None:
        self.tb.train_epoch(cycle * tr.epochs + epoch, means)
      if not all(math.isfinite(v) for v in means.values()):
        bad = [k for k, v in means.items() if not math.isfinite(v)]
        raise ALError(f"non-finite {', '.join(bad)} at cycle {cycle} epoch {epoch + 1}; "
                      "finished cycles are kept; try a lower learning rate")
      if len(self.val_idx) and tr.early_stopping:
        acc = self.evaluate(state, self.x_val, self.y_val)["accuracy"]
        if best is None or acc > best[0]:
          best = (acc, jax.tree_util.tree_map(jnp.copy, state), epoch)
        if self.tb is not None:
          self.tb.train_epoch(cycle * tr.epochs + epoch, {"val_accuracy": acc})
        patience = tr.get("early_stopping_patience", 0)
        if patience and epoch - best[2] >= patience:
          self.log(f"cycle {cycle + 1}/{cfg.al.cycles} | no validation improvement for "
                   f"{patience} epochs: stopping at epoch {epoch + 1}")
          break
      if (epoch + 1) % max(1, cfg.log_every) == 0 or epoch + 1 == tr.epochs:
        self.log(f"cycle {cycle + 1}/{cfg.al.cycles} | labeled {len(labeled)} | "
                 f"epoch {epoch + 1}/{tr.epochs} | "
                 + " | ".join(f"{k} {v:.4f}" for k, v in sorted(means.items())))
    if best is not None:
      self.log(f"cycle {cycle + 1}/{cfg.al.cycles} | early stopping: best validation accuracy {best[0]:.4f} "
               f"at epoch {best[2] + 1}")
      state = best[1]
    return state

  # --- evaluation ------------------------------------------------------------------------
  def evaluate(self, state, x: np.ndarray, y: np.ndarray) -> Dict[str, float]:
    mstate = self.objective.model_state(state)
    x_dev = self.x_test_dev if x is self.dataset.x_test else self._put(x)
    logits = acq_lib.map_chunks(_logits, mstate, x_dev, np.arange(len(y)), self.prep,
                                self.config.eval.chunk_size, dp=self.dp)
    return metrics_lib.to_host(metrics_lib.classification_metrics(
        jnp.asarray(logits), jnp.asarray(y), self.config.eval.ece_bins))

  # --- selection -------------------------------------------------------------------------
  def select(self, cycle: int, state, pool: Pool, prev_variables=None) -> Dict[str, Any]:
    mstate = self.objective.model_state(state)
    if self.acquisition.needs_previous:
      mstate = mstate.replace(prev_variables=prev_variables)
    task = None

    def on_chunk(done: int, total: int) -> None:
      nonlocal task
      if task is None:
        task = self.progress.task(f"cycle {cycle + 1}/{self.config.al.cycles} score",
                                  total, "chunk")
      task.update(done - task.done)

    try:
      return acq_lib.acquire(self.acquisition, mstate, self.x_dev, pool,
                             self.config.al.budget, jax.random.fold_in(self.k_acq, cycle),
                             self.prep, self.config.eval.chunk_size, self.config.al.subset,
                             dp=self.dp, cycle=cycle, run_rng=self.k_acq,
                             progress=on_chunk if self.progress is not None else None)
    finally:
      if task is not None:
        task.close()

  def diagnose(self, cycle: int, state, pool: Pool, prev_variables=None) -> Dict[str, Any]:
    """Loss-estimation report (al_jax.diagnostics) on an unlabeled probe and the test set."""
    mstate = self.objective.model_state(state).replace(prev_variables=prev_variables)
    unl = pool.unlabeled
    probe = np.sort(np.random.default_rng([self.config.seed, _DIAGNOSTICS, cycle]).choice(
        unl, min(DIAGNOSTICS_PROBE, len(unl)), replace=False))
    key = jax.random.fold_in(jax.random.fold_in(self.k_acq, cycle), _DIAGNOSTICS)
    run = lambda x, idx, y: diag_lib.loss_estimation(
        self.acquisition, mstate, x, idx, y, self.prep, self.config.eval.chunk_size, key,
        self.config.al.budget)
    return {"cycle": cycle, "num_labeled": pool.num_labeled,
            "unlabeled": run(self.x_dev, probe, self.y_train[probe]) if len(probe) else None,
            "test": run(self.x_test_dev, np.arange(len(self.dataset.y_test)),
                        self.dataset.y_test)}

  # --- the loop --------------------------------------------------------------------------
  def run(self, resume: bool = False) -> List[Dict[str, Any]]:
    wd = self.workdir
    if wd is None:
      return self._run(resume)
    wd.start(_to_dict(self.config), resume)
    try:
      return self._run(resume)
    finally:
      # Whatever stops the run (error, Ctrl-C), finished cycles' checkpoints are completed
      # and the workdir lock is released.
      if self.tb is not None:
        self.tb.close()
        self.tb = None
      wd.close()

  def _run(self, resume: bool) -> List[Dict[str, Any]]:
    cfg, wd = self.config, self.workdir
    pool = self.initial_pool()
    start, prev_state = 0, None
    if wd is not None and resume:
      step = wd.latest_checkpoint()
      if step is not None:
        abstract = jax.eval_shape(
            lambda: self.objective.init(self.k_init, self.x_train[:1]))
        prev_state, al = wd.restore_checkpoint(step, abstract)
        pool = Pool(self.y_train, np.asarray(al["labeled"]))
        start = int(al["cycle"]) + 1
        self.log(f"resuming after cycle {start - 1} ({pool.num_labeled} labeled)")
      wd.truncate_results(keep_below_cycle=start)
      if start >= cfg.al.cycles:
        self.log("nothing to do: every cycle is finished")
        return wd.read_results()
    rows = wd.read_results() if wd is not None else []
    if self.tensorboard:
      # On resume, TensorBoard drops events a killed run wrote at or past the redone steps.
      self.tb = progress_lib.TensorBoardWriter(
          wd.path, train_purge_step=start * cfg.train.epochs if start else None,
          test_purge_step=pool.num_labeled if start else None)
    for cycle in range(start, cfg.al.cycles):
      pool, prev_state = self._cycle(cycle, pool, prev_state, rows)
    return rows

  def train_initial(self, pool: Pool):
    """CRC §4.1: cycle 0 trains `train.initial_trials` models (initialisations and batch
    orders) and keeps the one of median validation accuracy (ties: the lower trial)."""
    trials = int(self.config.train.get("initial_trials", 1))
    states, accs = [], []
    for t in range(trials):
      states.append(self.train(0, pool, None, trial=t))
      accs.append(self.evaluate(states[-1], self.x_val, self.y_val)["accuracy"])
    order = np.lexsort((np.arange(trials), accs))
    pick = int(order[(trials - 1) // 2])
    self.log(f"cycle 1/{self.config.al.cycles} | initial-model trials: validation accuracy "
             + ", ".join(f"{a:.4f}" for a in accs) + f"; median: trial {pick + 1}")
    return states[pick], accs

  def _cycle(self, cycle: int, pool: Pool, prev_state, rows):
    cfg, wd = self.config, self.workdir
    t0 = time.time()
    trial_accs = None
    if cycle == 0 and cfg.train.get("initial_trials", 1) > 1:
      state, trial_accs = self.train_initial(pool)
    else:
      state = self.train(cycle, pool, prev_state)
    jax.block_until_ready(state)
    train_s = time.time() - t0
    test = self.evaluate(state, self.dataset.x_test, self.dataset.y_test)
    if wd is not None:  # objective-specific files, e.g. ARAL's sample grids
      self.objective.write_artifacts(state, os.path.join(wd.path, "artifacts", f"cycle_{cycle}"),
                                     cycle)
    t1 = time.time()
    selected = np.zeros(0, np.int64)
    score_s = select_s = 0.0
    if prev_state is None and self.acquisition.needs_previous:
      # TOD §4.2: in the first cycle the previous model is the untrained initial one
      # (re-derived from the cycle's init key, so resume gives the same model).
      prev_state = self.objective.init(jax.random.fold_in(self.k_init, cycle), self.x_train[:1])
    prev_vars = self.objective.model_state(prev_state).variables if prev_state else None
    if cycle + 1 < cfg.al.cycles:
      sel = self.select(cycle, state, pool, prev_vars)
      selected, score_s, select_s = sel["indices"], sel["score_seconds"], sel["select_seconds"]
    query_s = time.time() - t1
    if cfg.get("diagnostics"):
      self.diagnostics[cycle] = report = self.diagnose(cycle, state, pool, prev_vars)
      if wd is not None:
        diag_lib.write_report(wd.path, cycle, report)
      self.log(f"cycle {cycle + 1}/{cfg.al.cycles} diagnostics | unlabeled: "
               f"{diag_lib.summary(report['unlabeled'])} | test: {diag_lib.summary(report['test'])}")
    row = {"method": cfg.method, "objective": cfg.objective, "acquisition": cfg.acquisition,
           "dataset": cfg.dataset, "seed": cfg.seed, "cycle": cycle,
           "num_labeled": pool.num_labeled, "pool_size": pool.size, "test_accuracy": test["accuracy"],
           "test_ece": test["ece"], "test_nll": test["nll"], "test_brier": test["brier"],
           "train_seconds": round(train_s, 3), "query_seconds": round(query_s, 3),
           "score_seconds": round(score_s, 3), "select_seconds": round(select_s, 3),
           "num_selected": int(len(selected)), "compiles": self.compiles}
    if trial_accs is not None:
      row["initial_trials_val_accuracy"] = [round(a, 6) for a in trial_accs]
    rows.append(row)
    if self.tb is not None:
      self.tb.test_cycle(pool.num_labeled, {
          "accuracy": test["accuracy"], "ece": test["ece"], "nll": test["nll"],
          "brier": test["brier"], "train_seconds": train_s, "query_seconds": query_s})
    self.log(f"cycle {cycle + 1}/{cfg.al.cycles} done | labeled {pool.num_labeled} | "
             f"test acc {test['accuracy']:.4f} | ece {test['ece']:.4f} | "
             f"nll {test['nll']:.4f} | train {train_s:.1f}s | query {query_s:.1f}s")
    next_pool = pool.label(selected) if len(selected) else pool
    if wd is not None:
      wd.save_pool(cycle, pool.labeled)
      wd.append_result(row)
      wd.save_checkpoint(cycle, state, {"cycle": np.int64(cycle), "labeled": next_pool.labeled})
    return next_pool, state


def _logits(state, x, rng):
  del rng
  return state(x)[0]


def run(config, workdir: Optional[str] = None, resume: bool = False, log=logger.info,
        progress: Optional[progress_lib.Progress] = None, tensorboard: bool = False):
  """Runs one AL experiment; returns the per-cycle result rows."""
  return ActiveLearner(config, workdir, log, progress=progress,
                       tensorboard=tensorboard).run(resume)
