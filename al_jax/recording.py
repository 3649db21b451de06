"""The loop's recorder: result rows, pools, checkpoints, resume points, TensorBoard.

Everything a run leaves behind goes through one `Recorder`. Without a workdir it writes
nothing (the rows live in memory: tests, notebooks); with one it holds the workdir's lock
for the whole run and writes, per finished cycle, `pools/cycle_K.npy`, one `results.jsonl` row
and a checkpoint of the model and the AL state (next labeled set, cycle), in that order.
"""

import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import jax
import numpy as np

from al_jax import ALError
from al_jax import diagnostics as diag_lib
from al_jax import progress as progress_lib
from al_jax import results as results_lib
from al_jax.data import Pool


# The row's wall-clock fields: they differ between two runs of the same config, which agree
# on every other field (same seed, same rows), so comparisons of rows leave these out.
TIMING_FIELDS = ("train_seconds", "query_seconds", "score_seconds", "select_seconds",
                 "eval_seconds", "compile_seconds", "steps_per_second")


class Recorder:
  """Rows, pools, checkpoints and TensorBoard events of one run.

  Args:
    workdir: output directory; None writes nothing.
    tensorboard: write TensorBoard event files to `<workdir>/tensorboard` (needs a workdir).
  """

  def __init__(self, workdir: Optional[str] = None, tensorboard: bool = False):
    if tensorboard and not workdir:
      raise ALError("tensorboard event files need a workdir")
    self.tensorboard = tensorboard
    self.tb: Optional[progress_lib.TensorBoardWriter] = None
    self.workdir = results_lib.Workdir(workdir) if workdir else None

  # --- the run's lifetime ----------------------------------------------------------------
  def open(self, config_dict: Dict[str, Any], resume: bool) -> None:
    """Takes the workdir's lock and writes (or checks, on resume) its config."""
    if self.workdir is not None:
      self.workdir.start(config_dict, resume)

  def close(self) -> None:
    """Whatever stops the run (error, Ctrl-C), finished cycles' checkpoints are completed
    and the workdir lock is released."""
    if self.tb is not None:
      self.tb.close()
      self.tb = None
    if self.workdir is not None:
      self.workdir.close()

  def resume_point(self, abstract_state: Callable[[], Any], y_train: np.ndarray,
                   cycles: int, log: Callable[[str], None]
                   ) -> Tuple[int, Any, Optional[Pool]]:
    """Where a resumed run continues: (first cycle to run, previous state, its pool).

    Rows of cycles at or past that point are dropped (a killed run may have written one
    without its checkpoint). Returns (0, None, None) when there is nothing to resume.
    """
    wd = self.workdir
    start, prev_state, pool = 0, None, None
    # The newest checkpoint that restores and agrees with results.jsonl (a damaged newer one
    # is set aside with one line).
    restored = wd.restore_latest(jax.eval_shape(abstract_state), log=log)
    if restored is not None:
      _, prev_state, al = restored
      pool = Pool(y_train, np.asarray(al["labeled"]))
      start = int(al["cycle"]) + 1
      log(f"resuming after cycle {start - 1} ({pool.num_labeled} labeled)")
    wd.truncate_results(keep_below_cycle=start)
    if start >= cycles:
      log("nothing to do: every cycle is finished")
    return start, prev_state, pool

  def load_rows(self) -> List[Dict[str, Any]]:
    """The rows already written (resume), which this run's rows extend."""
    return self.workdir.read_results() if self.workdir is not None else []

  def start_tensorboard(self, start: int, num_labeled: int, epochs: int) -> None:
    if self.tensorboard and self.workdir.writer:  # process 0 alone writes (al_jax.results)
      # On resume, TensorBoard drops events a killed run wrote at or past the redone steps.
      self.tb = progress_lib.TensorBoardWriter(
          self.workdir.path, train_purge_step=start * epochs if start else None,
          test_purge_step=num_labeled if start else None)

  # --- within a cycle --------------------------------------------------------------------
  def train_epoch(self, step: int, metrics: Dict[str, float]) -> None:
    if self.tb is not None:
      self.tb.train_epoch(step, metrics)

  def artifacts_prefix(self, cycle: int) -> Optional[str]:
    """Where objective-specific files of a cycle go (None without a workdir)."""
    if self.workdir is None or not self.workdir.writer:
      return None
    return os.path.join(self.workdir.path, "artifacts", f"cycle_{cycle}")

  def diagnostics(self, cycle: int, report: Dict[str, Any]) -> None:
    if self.workdir is not None:
      self.workdir.on_writer(diag_lib.write_report, self.workdir.path, cycle, report)

  def test_point(self, row: Dict[str, Any], test: Dict[str, float], train_s: float,
              query_s: float) -> None:
    """A finished cycle's TensorBoard test point."""
    if self.tb is not None:
      self.tb.test_cycle(row["num_labeled"], {
          "accuracy": test["accuracy"], "ece": test["ece"], "nll": test["nll"],
          "brier": test["brier"], "train_seconds": train_s, "query_seconds": query_s})

  def save_cycle(self, cycle: int, pool: Pool, next_pool: Pool, state,
                 row: Dict[str, Any]) -> None:
    """Writes a finished cycle: its pool, its result line, then the checkpoint (model and
    next labeled set) that marks it finished for resume."""
    wd = self.workdir
    if wd is not None:
      wd.save_pool(cycle, pool.labeled)
      wd.append_result(row)
      wd.save_checkpoint(cycle, state, {"cycle": np.int64(cycle), "labeled": next_pool.labeled})


def result_row(config, cycle: int, pool: Pool, test: Dict[str, float], train_s: float,
               query_s: float, score_s: float, select_s: float, num_selected: int,
               compiles: int, trial_accs: Optional[List[float]] = None,
               health: Sequence[str] = (),
               cost: Optional[Dict[str, float]] = None,
               selection_info: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
  """One `results.jsonl` row (its keys and order are the results format); `cost` holds the
  cycle's eval_seconds, compile_seconds and steps_per_second (al_jax.loop.cycle_cost);
  `selection_info` what the selector measured while choosing (Selection.info)."""
  cfg = config
  cost = cost or {"eval_seconds": 0.0, "compile_seconds": 0.0, "steps_per_second": 0.0}
  row = {"method": cfg.method, "objective": cfg.objective, "acquisition": cfg.acquisition,
         "dataset": cfg.dataset, "seed": cfg.seed, "cycle": cycle,
         "num_labeled": pool.num_labeled, "pool_size": pool.size, "test_accuracy": test["accuracy"],
         "test_ece": test["ece"], "test_nll": test["nll"], "test_brier": test["brier"],
         "train_seconds": round(train_s, 3), "query_seconds": round(query_s, 3),
         "score_seconds": round(score_s, 3), "select_seconds": round(select_s, 3),
         "eval_seconds": cost["eval_seconds"], "compile_seconds": cost["compile_seconds"],
         "steps_per_second": cost["steps_per_second"],
         "num_selected": int(num_selected), "compiles": compiles,
         # al_jax.health: training at chance, a side model's loss diverged.
         "health": list(health)}
  if selection_info:
    # What the selector measured while choosing this cycle's query (Selection.info).
    row["selection"] = dict(selection_info)
  if trial_accs is not None:
    row["initial_trials_val_accuracy"] = [round(a, 6) for a in trial_accs]
  return row
