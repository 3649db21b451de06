"""The workdir: config.json, results.jsonl, pools/, checkpoints/ (docs/architecture.md "Outputs").

Writes are crash-safe: JSON files are written to a temporary name and renamed,
results rows are appended and fsynced one line at a time, and a resumed run
first drops the rows of any cycle that has no checkpoint yet.
"""

import fcntl
import json
import os
from typing import Any, Dict, List, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp

import al_jax
from al_jax import ALError

# Keys that may differ between a run and its --resume without making it a different experiment.
_RUN_ONLY_KEYS = ("resume", "workdir", "log_every", "diagnostics", "parallel")


def environment_info() -> Dict[str, Any]:
  return {"al_jax_version": al_jax.__version__, "jax_version": jax.__version__,
          "backend": jax.default_backend(),
          "devices": [str(d) for d in jax.devices()], "device_count": jax.device_count()}


def atomic_write(path: str, text: str) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write(text)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def _diff_keys(a: Dict, b: Dict, prefix: str = "") -> List[str]:
  out = []
  for k in sorted(set(a) | set(b)):
    if k in _RUN_ONLY_KEYS:
      continue
    va, vb = a.get(k), b.get(k)
    if isinstance(va, dict) and isinstance(vb, dict):
      out += _diff_keys(va, vb, prefix + k + ".")
    elif va != vb:
      out.append(prefix + k)
  return out


class Workdir:
  """One experiment's directory."""

  def __init__(self, path: str):
    self.path = os.path.abspath(path)
    self.config_path = os.path.join(self.path, "config.json")
    self.results_path = os.path.join(self.path, "results.jsonl")
    self.pools_dir = os.path.join(self.path, "pools")
    self.ckpt_dir = os.path.join(self.path, "checkpoints")
    self._mngr: Optional[ocp.CheckpointManager] = None
    self._lock = None

  # --- experiment identity ---------------------------------------------------------------
  def holds_experiment(self) -> bool:
    return os.path.exists(self.config_path)

  def start(self, config: Dict[str, Any], resume: bool) -> None:
    """Creates the workdir, or checks that `--resume` continues the same experiment."""
    config = json.loads(json.dumps(config))  # tuples → lists, as they come back from disk
    if self.holds_experiment():
      if not resume:
        raise ALError(f"workdir {self.path} already holds an experiment; pass --resume to "
                      "continue it or choose another --workdir")
      try:
        with open(self.config_path) as f:
          old = json.load(f)["config"]
      except (OSError, ValueError, KeyError) as e:
        raise ALError(f"workdir {self.path}: config.json is unreadable ({e})") from None
      diff = _diff_keys(old, config)
      if diff:
        raise ALError(f"workdir {self.path} holds a different experiment (differs in: "
                      f"{', '.join(diff[:8])}); use another --workdir")
    else:
      if resume:
        raise ALError(f"--resume: workdir {self.path} holds no experiment (no config.json)")
      if os.path.isdir(self.path) and os.listdir(self.path):
        raise ALError(f"workdir {self.path} is not empty and holds no experiment; "
                      "choose another --workdir")
    os.makedirs(self.pools_dir, exist_ok=True)
    os.makedirs(self.ckpt_dir, exist_ok=True)
    self._acquire_lock()
    atomic_write(self.config_path, json.dumps(
        {"config": config, "environment": environment_info()}, indent=2, sort_keys=True))

  def _acquire_lock(self) -> None:
    """One process per workdir: a second run (or --resume) while one is alive is refused."""
    self._lock = open(os.path.join(self.path, ".lock"), "w")
    try:
      fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      self._lock.close()
      self._lock = None
      raise ALError(f"workdir {self.path} is in use by another running process") from None

  # --- per-cycle files -------------------------------------------------------------------
  def read_results(self) -> List[Dict[str, Any]]:
    if not os.path.exists(self.results_path):
      return []
    rows = []
    with open(self.results_path) as f:
      for line in f:
        line = line.strip()
        if not line:
          continue
        try:
          rows.append(json.loads(line))
        except ValueError:
          break  # a torn last line from a kill: ignore it and what follows
    return rows

  def truncate_results(self, keep_below_cycle: int) -> None:
    rows = [r for r in self.read_results() if r["cycle"] < keep_below_cycle]
    atomic_write(self.results_path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))

  def append_result(self, row: Dict[str, Any]) -> None:
    with open(self.results_path, "a") as f:
      f.write(json.dumps(row, sort_keys=True) + "\n")
      f.flush()
      os.fsync(f.fileno())

  def save_pool(self, cycle: int, labeled: np.ndarray) -> None:
    tmp = os.path.join(self.pools_dir, f".cycle_{cycle}.npy")
    np.save(tmp, np.asarray(labeled, np.int64))
    os.replace(tmp, os.path.join(self.pools_dir, f"cycle_{cycle}.npy"))

  def write_json(self, name: str, obj: Any) -> None:
    atomic_write(os.path.join(self.path, name), json.dumps(obj, indent=2, sort_keys=True))

  # --- checkpoints -----------------------------------------------------------------------
  @property
  def manager(self) -> ocp.CheckpointManager:
    if self._mngr is None:
      self._mngr = ocp.CheckpointManager(
          self.ckpt_dir, options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True))
    return self._mngr

  def latest_checkpoint(self) -> Optional[int]:
    return self.manager.latest_step()

  def save_checkpoint(self, cycle: int, state: Any, al_state: Dict[str, Any]) -> None:
    """Model state and AL bookkeeping in one checkpoint (big_vision keeps both together)."""
    self.manager.save(cycle, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), al=ocp.args.StandardSave(al_state)))

  def restore_checkpoint(self, cycle: int, abstract_state: Any):
    try:
      out = self.manager.restore(cycle, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state), al=ocp.args.StandardRestore()))
    except Exception as e:  # orbax raises many types for torn or foreign files
      msg = str(e).splitlines()[0] if str(e) else type(e).__name__
      raise ALError(f"checkpoint {cycle} in {self.ckpt_dir} is corrupt or unreadable "
                    f"({msg[:200]}); remove it to resume from the one before") from None
    return out["state"], out["al"]

  def close(self) -> None:
    if self._mngr is not None:
      self._mngr.wait_until_finished()
      self._mngr.close()
      self._mngr = None
    if self._lock is not None:
      self._lock.close()  # releases the flock
      self._lock = None
