"""The active-learning loop: train → evaluate → score → select → label, with resume.

Cycle K trains a model on the labeled set of cycle K (written to
`pools/cycle_K.npy`), evaluates it on the test set, selects `budget` new points
(except after the last cycle), appends one row to `results.jsonl` and saves a
checkpoint holding the model state and the AL state (next labeled set, cycle).
A killed run restarted with resume=True continues after the last checkpoint and,
because every random draw is keyed by (seed, purpose, cycle, epoch), produces
the same results as an uninterrupted run.

The parts, each in its own module, meet at typed seams:

  RunData   (here)                the pool setup: dataset, validation split, pool copies,
                                  preprocessing, arrays on device, data parallel
  Trainer   (al_jax.training)     epochs, batches, the jitted step, early stopping,
                                  initial-model trials, evaluation
  Selector  (al_jax.selection)    initial pool, each cycle's `Selection`, diagnostics;
                                  `select_fn` replaces the query rule without subclassing
  Recorder  (al_jax.recording)    result rows, pools, checkpoints, resume, TensorBoard

`ActiveLearner` builds them from a config and runs the cycles; `run` is the one-call entry.
"""

import dataclasses
import logging
import time
from typing import Any, Callable, Dict, List, Optional

import jax
import jax.numpy as jnp
import numpy as np
from al_jax import ALError
from al_jax import acquisition as acq_lib
from al_jax import costs as costs_lib
from al_jax import diagnostics as diag_lib
from al_jax import health as health_lib
from al_jax import objectives as obj_lib
from al_jax import parallel
from al_jax import progress as progress_lib
from al_jax import results as results_lib  # noqa: F401  (tests reach the Workdir through here)
from al_jax.acquisition import Selection
from al_jax.data import DATASETS, Pool, Preprocess
from al_jax.methods import check_pairing
from al_jax.models import get_model
from al_jax.recording import Recorder, result_row
from al_jax.selection import SelectFn, Selector, check_selection
from al_jax.training import Trainer, epoch_batches  # noqa: F401

# Host-side numpy streams, one per purpose: batches of labeled (1) / unlabeled (2) data
# (al_jax.training), the initial pool (3) and the diagnostics probe (5) (al_jax.selection),
# and the validation split (4).
_VALIDATION = 4

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
  if al.subset > num_train - al.initial:
    raise ALError(f"al.subset={al.subset} is out of range: must be ≤ the "
                  f"{num_train - al.initial} unlabeled points of the first query (0 = all)")


# --- pool setup -----------------------------------------------------------------------------
@dataclasses.dataclass
class RunData:
  """The run's data as every part sees it.

  Attributes:
    dataset: the loaded dataset (test split, number of classes).
    x_train, y_train: the pool (the training set minus the validation split, repeated
      `al.pool_copies` times).
    val_idx, x_val, y_val: the held-out validation split (empty / None without one).
    prep: on-device preprocessing.
    dp: the data-parallel mesh, or None on one device.
    x_dev, x_test_dev: the pool's and the test set's images on device.
  """
  dataset: Any
  x_train: np.ndarray
  y_train: np.ndarray
  val_idx: np.ndarray
  x_val: Optional[np.ndarray]
  y_val: Optional[np.ndarray]
  prep: Preprocess
  dp: Optional[parallel.DataParallel] = None
  x_dev: Any = None
  x_test_dev: Any = None

  def put(self, x):
    """Replicated over the data-parallel mesh, or plain on the default device."""
    return self.dp.replicate(x) if self.dp is not None else jnp.asarray(x)

  def put_batch(self, x, axis: int = 0):
    """Sharded along `axis` over the data-parallel mesh, or plain on the default device."""
    return self.dp.shard(x, axis) if self.dp is not None else jnp.asarray(x)

  def to_devices(self, config) -> None:
    """Data parallel over all local devices when there are several (parallel.devices=0),
    batch axis sharded; a no-op on one device. Puts the images on device once per run."""
    self.dp = parallel.maybe_data_parallel(config.parallel.devices)
    if self.dp is not None:
      self.dp.check_divisible("train.batch_size", config.train.batch_size)
      self.dp.check_divisible("train.unlabeled_batch_size", config.train.unlabeled_batch_size)
      self.dp.check_divisible("eval.chunk_size", config.eval.chunk_size)
    self.x_dev = self.put(self.x_train)
    self.x_test_dev = self.put(self.dataset.x_test)


def load_data(config) -> RunData:
  """Loads the dataset, carves the validation split, builds the pool and checks the schedule."""
  ds = DATASETS.get(config.dataset)(data_dir=config.get("data_dir") or None, seed=config.seed)
  x, y = ds.x_train, ds.y_train
  if config.seed < 0:  # before the validation split draws with it
    raise ALError(f"seed must be non-negative, got {config.seed}")
  val_idx, x_val, y_val = np.zeros(0, np.int64), None, None
  if config.al.val_size > 0:
    # A held-out labeled split carved from the train set for early stopping (CRC §4):
    # never the test set. It is removed from the pool, so it is never selected.
    rs = np.random.default_rng([config.seed, _VALIDATION])
    perm = rs.permutation(len(y))
    val_idx = np.sort(perm[:config.al.val_size])
    keep = np.sort(perm[config.al.val_size:])
    x_val, y_val = x[val_idx], y[val_idx]
    x, y = x[keep], y[keep]
  copies = config.al.get("pool_copies", 1)
  if copies < 1:
    raise ALError(f"al.pool_copies must be ≥ 1, got {copies}")
  if copies > 1:
    # A repeated pool: image i is also at i + N, i + 2N, ... (CRC Proposition 2 checks
    # that an acquisition never queries such a copy when a distinct image is available).
    x, y = np.concatenate([x] * copies), np.concatenate([y] * copies)
  validate(config, len(y))
  prep = Preprocess.for_dataset(ds, augment=config.train.augment,
                                crop_pad=config.train.crop_pad, flip=config.train.flip)
  return RunData(dataset=ds, x_train=x, y_train=y, val_idx=val_idx, x_val=x_val, y_val=y_val,
                 prep=prep)


# --- the learner ----------------------------------------------------------------------------
class ActiveLearner:
  """Builds every part from a config and runs the cycles.

  Args:
    config: resolved ConfigDict (see experiments/configs).
    workdir: output directory; None keeps everything in memory (tests, notebooks).
    log: logging function.
    progress: an `al_jax.progress.Progress` for bars or periodic lines within a cycle
      (training steps, scoring chunks); None shows only the per-epoch and per-cycle lines.
    tensorboard: write TensorBoard event files to `<workdir>/tensorboard` (needs a workdir).
    select_fn: a custom selection rule (`al_jax.selection.SelectFn`) used instead of the
      configured acquisition's query; its `Selection` must hold `al.budget` unlabeled indices.
  """

  def __init__(self, config, workdir: Optional[str] = None,
               log: Callable[[str], None] = logger.info,
               progress: Optional[progress_lib.Progress] = None, tensorboard: bool = False,
               select_fn: Optional[SelectFn] = None):
    self.config = config
    self.log = log
    self.progress = progress
    self.select_fn = select_fn
    self.recorder = Recorder(workdir, tensorboard)
    self.data = data = load_data(config)
    model = get_model(config.model.name, data.dataset.num_classes,
                      **_to_dict(config.model.kwargs))
    obj_cls = obj_lib.OBJECTIVES.get(config.objective)
    acq_cls = acq_lib.ACQUISITIONS.get(config.acquisition)
    # The declared contract (Acquisition.requires ⊆ Objective.provides), before any training.
    check_pairing(config.objective, config.acquisition)
    try:
      self.objective = obj_cls(
          model=model, prep=data.prep, num_classes=data.dataset.num_classes,
          optim_cfg=config.optim, epochs=config.train.epochs, **_to_dict(config.objective_kwargs))
      self.acquisition = acq_cls(**_to_dict(config.acquisition_kwargs))
    except TypeError as e:  # unknown objective_kwargs / acquisition_kwargs
      raise ALError(str(e).splitlines()[0]) from None
    root = jax.random.PRNGKey(config.seed)
    self.k_init, self.k_train, self.k_acq = jax.random.split(root, 3)
    data.to_devices(config)
    self.trainer = Trainer(config, data, self.objective, self.k_init, self.k_train, log,
                           progress, on_epoch=self.recorder.train_epoch)
    self.selector = Selector(config, data, self.objective, self.acquisition, self.k_acq,
                             progress)
    self.diagnostics: Dict[int, Dict[str, Any]] = {}

  # The run's data and parts under the names tests, notebooks and harnesses use.
  dataset = property(lambda self: self.data.dataset)
  x_train = property(lambda self: self.data.x_train)
  y_train = property(lambda self: self.data.y_train)
  val_idx = property(lambda self: self.data.val_idx)
  x_val = property(lambda self: self.data.x_val)
  y_val = property(lambda self: self.data.y_val)
  prep = property(lambda self: self.data.prep)
  dp = property(lambda self: self.data.dp)
  x_dev = property(lambda self: self.data.x_dev)
  x_test_dev = property(lambda self: self.data.x_test_dev)
  workdir = property(lambda self: self.recorder.workdir)
  compiles = property(lambda self: self.trainer.compiles)
  _step = property(lambda self: self.trainer.step)

  def initial_pool(self) -> Pool:
    return self.selector.initial_pool()

  def train(self, cycle: int, pool: Pool, prev_state=None, trial: int = 0):
    return self.trainer.train(cycle, pool, prev_state, trial)

  def initial_trial_pools(self, pool: Pool) -> List[Pool]:
    """The pool of each initial-model trial: CRC §4.1 "the initial pool of labeled instances
    significantly affected [the results] … we randomly sampled Q₀ images from each class … and
    used the model that attained median performance across 5 and 3 trials" — each trial
    draws its own pool (`train.initial_trials_redraw="pool"`, default); "init" keeps one pool
    and re-draws only the initialisation and batch order. Trial 0 is the shared pool."""
    trials = int(self.config.train.get("initial_trials", 1))
    if self.config.train.get("initial_trials_redraw", "pool") == "init":
      return [pool] * trials
    return [pool] + [self.selector.initial_pool(trial=t) for t in range(1, trials)]

  def train_initial(self, pool: Pool):
    """(state, validation accuracies, the picked trial's pool) of cycle 0's trials."""
    pools = self.initial_trial_pools(pool)
    state, accs, pick = self.trainer.train_initial(pools)
    return state, accs, pools[pick]

  def evaluate(self, state, x: np.ndarray, y: np.ndarray) -> Dict[str, float]:
    return self.trainer.evaluate(state, x, y)

  def select(self, cycle: int, state, pool: Pool, prev_variables=None) -> Selection:
    """The query of cycle `cycle`: `select_fn` when given, else the configured acquisition."""
    if self.select_fn is None:
      return self.selector.select(cycle, state, pool, prev_variables)
    return check_selection(self.select_fn(self, cycle, state, pool, prev_variables), pool,
                           self.config.al.budget)

  def diagnose(self, cycle: int, state, pool: Pool, prev_variables=None) -> Dict[str, Any]:
    return self.selector.diagnose(cycle, state, pool, prev_variables)

  # --- the loop --------------------------------------------------------------------------
  def run(self, resume: bool = False) -> List[Dict[str, Any]]:
    self.recorder.open(_to_dict(self.config), resume)
    try:
      return self._run(resume)
    finally:
      # Whatever stops the run (error, Ctrl-C), finished cycles' checkpoints are completed
      # and the workdir lock is released.
      self.recorder.close()

  def _run(self, resume: bool) -> List[Dict[str, Any]]:
    cfg, rec = self.config, self.recorder
    pool = self.initial_pool()
    start, prev_state = 0, None
    if rec.workdir is not None and resume:
      start, prev_state, restored = rec.resume_point(
          lambda: self.objective.init(self.k_init, self.x_train[:1]), self.y_train,
          cfg.al.cycles, self.log)
      if restored is not None:
        pool = restored
      if prev_state is not None and self.data.dp is None:
        # The fresh run's placement (parallel.uncommitted): no second compile of each step.
        prev_state = parallel.uncommitted(prev_state)
      if start >= cfg.al.cycles:
        return rec.load_rows()
    rows = rec.load_rows()
    rec.start_tensorboard(start, pool.num_labeled, cfg.train.epochs)
    for cycle in range(start, cfg.al.cycles):
      pool, prev_state = self._cycle(cycle, pool, prev_state, rows)
    return rows

  def _cycle(self, cycle: int, pool: Pool, prev_state, rows):
    """One cycle: train, evaluate, select, record. Returns (next pool, this cycle's state)."""
    cfg, rec = self.config, self.recorder
    # What the cycle costs (al_jax.costs): each phase's wall seconds and the seconds JAX spent
    # compiling within it, which a first call's wall time includes.
    steps0 = self.trainer.steps_run
    t0 = time.time()
    trial_accs = None
    with costs_lib.CompileClock() as train_c:
      if cycle == 0 and cfg.train.get("initial_trials", 1) > 1:
        # The median trial's pool becomes the run's pool (its cycle-0 labeled set).
        state, trial_accs, pool = self.train_initial(pool)
      else:
        state = self.train(cycle, pool, prev_state)
      jax.block_until_ready(state)
    train_s = time.time() - t0
    te = time.time()
    with costs_lib.CompileClock() as eval_c:
      test = self.evaluate(state, self.dataset.x_test, self.dataset.y_test)
    eval_s = time.time() - te
    prefix = rec.artifacts_prefix(cycle)
    if prefix is not None:  # objective-specific files, e.g. ARAL's sample grids
      self.objective.write_artifacts(parallel.local_copy(state), prefix, cycle)
    t1 = time.time()
    selected = np.zeros(0, np.int64)
    score_s = select_s = 0.0
    sel_info = {}
    if prev_state is None and self.acquisition.needs_previous:
      # TOD §4.2: in the first cycle the previous model is the untrained initial one
      # (re-derived from the cycle's init key, so resume gives the same model).
      prev_state = self.trainer.init_state(cycle)
    prev_vars = self.objective.model_state(prev_state).variables if prev_state else None
    with costs_lib.CompileClock() as query_c:
      if cycle + 1 < cfg.al.cycles:
        sel = self.select(cycle, state, pool, prev_vars)
        selected, score_s, select_s = sel.indices, sel.score_seconds, sel.select_seconds
        sel_info = sel.info
        parallel.check_same(f"cycle {cycle} selection", selected)  # several processes agree
    query_s = time.time() - t1
    cost = cycle_cost(eval_s, train_c.seconds + eval_c.seconds + query_c.seconds,
                      self.trainer.steps_run - steps0, train_s - train_c.seconds)
    if cfg.get("diagnostics"):
      self.diagnostics[cycle] = report = self.diagnose(cycle, state, pool, prev_vars)
      rec.diagnostics(cycle, report)
      self.log(f"cycle {cycle + 1}/{cfg.al.cycles} diagnostics | unlabeled: "
               f"{diag_lib.summary(report['unlabeled'])} | test: {diag_lib.summary(report['test'])}")
    row = result_row(cfg, cycle, pool, test, train_s, query_s, score_s, select_s, len(selected),
                     self.compiles, trial_accs,
                     health_lib.flags(self.trainer.epoch_means, self.data.dataset.num_classes,
                                      pool.num_labeled), cost, sel_info)
    if row["health"]:
      self.log(f"cycle {cycle + 1}/{cfg.al.cycles} health: {', '.join(row['health'])}")
    rows.append(row)
    rec.test_point(row, test, train_s, query_s)
    self.log(f"cycle {cycle + 1}/{cfg.al.cycles} done | labeled {pool.num_labeled} | "
             f"test acc {test['accuracy']:.4f} | ece {test['ece']:.4f} | "
             f"nll {test['nll']:.4f} | train {train_s:.1f}s | query {query_s:.1f}s | "
             f"compiling {cost['compile_seconds']:.1f}s")
    next_pool = pool.label(selected) if len(selected) else pool
    rec.save_cycle(cycle, pool, next_pool, state, row)
    return next_pool, state


def cycle_cost(eval_s: float, compile_s: float, steps: int,
               train_run_s: float) -> Dict[str, float]:
  """A cycle's cost fields beyond train/query/score/select seconds: its test evaluation's
  seconds, the seconds JAX spent compiling within training, evaluation and the query (a part
  of those phases' seconds), and its training steps per second of training time not spent
  compiling — the steady-state rate, host-side batching and validation passes included."""
  return {"eval_seconds": round(eval_s, 3), "compile_seconds": round(compile_s, 3),
          "steps_per_second": round(steps / train_run_s, 3) if steps and train_run_s > 0
          else 0.0}


def run(config, workdir: Optional[str] = None, resume: bool = False, log=logger.info,
        progress: Optional[progress_lib.Progress] = None, tensorboard: bool = False,
        select_fn: Optional[SelectFn] = None):
  """Runs one AL experiment; returns the per-cycle result rows."""
  return ActiveLearner(config, workdir, log, progress=progress, tensorboard=tensorboard,
                       select_fn=select_fn).run(resume)
