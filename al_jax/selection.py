"""The loop's selector: the initial pool, each cycle's query and the loss-estimation report.

Selection returns a typed `al_jax.acquisition.Selection`. A harness that needs another
selection rule (CRC's pseudo-AL groups, which read the oracle's labels) passes a
`SelectFn` to `ActiveLearner(select_fn=...)` instead of subclassing the loop.
"""

from typing import TYPE_CHECKING, Any, Dict, Optional, Protocol

import jax
import numpy as np

from al_jax import ALError
from al_jax import acquisition as acq_lib
from al_jax import diagnostics as diag_lib
from al_jax import progress as progress_lib
from al_jax.acquisition import Selection
from al_jax.data import Pool
from al_jax.training import TRIAL_STREAM

if TYPE_CHECKING:
  from al_jax.loop import ActiveLearner

# Host-side numpy streams of the selector: the initial pool and the diagnostics probe.
_INITIAL, _DIAGNOSTICS = 3, 5
# Probe size of the loss-estimation diagnostics (a random subset of the unlabeled pool).
DIAGNOSTICS_PROBE = 2000


class SelectFn(Protocol):
  """A custom selection rule: the learner, the cycle, its trained state, the pool and the
  previous cycle's model variables (None unless the acquisition needs them) → a Selection
  of exactly `config.al.budget` unlabeled indices."""

  def __call__(self, learner: "ActiveLearner", cycle: int, state: Any, pool: Pool,
               prev_variables: Optional[Any]) -> Selection:
    ...


class Selector:
  """Runs the configured acquisition over the pool.

  Args:
    config: the run's resolved config.
    data: the run's `al_jax.loop.RunData`.
    objective: the built objective (its `model_state` is what acquisitions see).
    acquisition: the built acquisition.
    k_acq: the run's acquisition key (folded with the cycle per query).
    progress: optional progress display for scoring chunks.
  """

  def __init__(self, config, data, objective, acquisition, k_acq: jax.Array,
               progress: Optional[progress_lib.Progress] = None):
    self.config = config
    self.data = data
    self.objective = objective
    self.acquisition = acquisition
    self.k_acq = k_acq
    self.progress = progress

  def cycle_key(self, cycle: int) -> jax.Array:
    """The acquisition key of a cycle's query."""
    return jax.random.fold_in(self.k_acq, cycle)

  def initial_pool(self, trial: int = 0) -> Pool:
    """Depends only on (seed, dataset, size): every method of a study shares it (paired design),
    unless the acquisition defines its own (PT4AL's first pretext batch). `trial` > 0 draws
    another one from its own stream (CRC §4.1's initial-pool trials)."""
    cfg, data = self.config, self.data
    al = cfg.al
    if al.get("full_labels", False):
      # Reference run (ARAL §4 "full training of our model"): every training point labeled.
      return Pool(data.y_train, np.arange(len(data.y_train)))
    ctx = acq_lib.SelectContext(state=None, x_all=data.x_dev, labeled=np.zeros(0, np.int64),
                                candidates=np.arange(len(data.y_train)), prep=data.prep,
                                chunk_size=cfg.eval.chunk_size, dp=data.dp,
                                run_rng=self.k_acq)
    own = self.acquisition.initial_pool(ctx, al.initial)
    if own is not None:
      if al.class_balanced:
        raise ALError(f"acquisition {cfg.acquisition!r} chooses its own initial pool; "
                      "set al.class_balanced=False")
      return Pool(data.y_train, np.sort(np.asarray(own, np.int64)))
    stream = [cfg.seed, _INITIAL] + ([TRIAL_STREAM + trial] if trial else [])
    return Pool.initial(data.y_train, al.initial, np.random.default_rng(stream),
                        class_balanced=al.class_balanced, num_classes=data.dataset.num_classes)

  def select(self, cycle: int, state, pool: Pool, prev_variables=None) -> Selection:
    """The configured acquisition's query of `al.budget` points for the next cycle."""
    cfg = self.config
    mstate = self.objective.model_state(state)
    if self.acquisition.needs_previous:
      mstate = mstate.replace(prev_variables=prev_variables)
    task = None

    def on_chunk(done: int, total: int) -> None:
      nonlocal task
      if task is None:
        task = self.progress.task(f"cycle {cycle + 1}/{cfg.al.cycles} score", total, "chunk")
      task.update(done - task.done)

    try:
      return acq_lib.acquire(self.acquisition, mstate, self.data.x_dev, pool, cfg.al.budget,
                             self.cycle_key(cycle), self.data.prep, cfg.eval.chunk_size,
                             cfg.al.subset, dp=self.data.dp, cycle=cycle, run_rng=self.k_acq,
                             progress=on_chunk if self.progress is not None else None)
    finally:
      if task is not None:
        task.close()

  def diagnose(self, cycle: int, state, pool: Pool, prev_variables=None) -> Dict[str, Any]:
    """Loss-estimation report (al_jax.diagnostics) on an unlabeled probe and the test set."""
    cfg, data = self.config, self.data
    mstate = self.objective.model_state(state).replace(prev_variables=prev_variables)
    unl = pool.unlabeled
    probe = np.sort(np.random.default_rng([cfg.seed, _DIAGNOSTICS, cycle]).choice(
        unl, min(DIAGNOSTICS_PROBE, len(unl)), replace=False))
    key = jax.random.fold_in(self.cycle_key(cycle), _DIAGNOSTICS)
    run = lambda x, idx, y: diag_lib.loss_estimation(
        self.acquisition, mstate, x, idx, y, data.prep, cfg.eval.chunk_size, key, cfg.al.budget)
    return {"cycle": cycle, "num_labeled": pool.num_labeled,
            "unlabeled": run(data.x_dev, probe, data.y_train[probe]) if len(probe) else None,
            "test": run(data.x_test_dev, np.arange(len(data.dataset.y_test)),
                        data.dataset.y_test)}


def check_selection(sel: Any, pool: Pool, budget: int) -> Selection:
  """A custom rule's result is held to the acquisitions' contract before anything is labeled."""
  if not isinstance(sel, Selection):
    raise ALError(f"select_fn must return an al_jax.acquisition.Selection, "
                  f"got {type(sel).__name__}")
  idx = np.asarray(sel.indices)
  if (len(idx) != budget or len(np.unique(idx)) != budget
      or not np.isin(idx, pool.unlabeled).all()):
    raise ALError(f"select_fn returned an invalid selection ({len(idx)} indices, "
                  f"{len(np.unique(idx))} distinct, budget {budget}, all unlabeled: "
                  f"{bool(np.isin(idx, pool.unlabeled).all())})")
  return sel
