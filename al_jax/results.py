"""The workdir: config.json, results.jsonl, pools/, checkpoints/ (docs/architecture.md "Outputs").

Writes are crash-safe: JSON files are written to a temporary name and renamed,
results rows are appended and fsynced one line at a time, and a resumed run
first drops the rows of any cycle that has no checkpoint yet.

A write that fails for lack of space or permission (ENOSPC, EDQUOT, EROFS, EACCES, EPERM;
orbax/tensorstore report a full disk as RESOURCE_EXHAUSTED) stops the run with one ALError
line naming the path and the errno; the finished cycles' files stay readable and `--resume`
(after space is freed) redoes the unfinished cycle. A newest checkpoint that does not
restore or disagrees with results.jsonl is set aside and the one before is used.

A run spanning several processes (experiments.main --distributed) has one writer, process 0:
it alone creates the workdir, holds its lock and writes config.json, results.jsonl, pools/
and checkpoints/ (host copies of the replicated model state, through an orbax manager
limited to process 0); the other processes never touch the directory. Each write is a
collective (`al_jax.parallel.on_writer`): the others wait for it, so none runs ahead of an
unwritten cycle, and a failed write stops every process with the same one line. What the
others must read — a resumed run's rows, checkpoint and labeled set — process 0 reads and
broadcasts, so the workdir need not be on a filesystem the other hosts see.
"""

import contextlib
import errno
import fcntl
import json
import logging
import os
import platform
import shutil
from typing import Any, Callable, Dict, List, Optional, Tuple

import jax
import numpy as np
import orbax.checkpoint as ocp

import al_jax
from al_jax import ALError
from al_jax import parallel
from al_jax.writes import write_errno, write_error, writing  # noqa: F401  (re-exported)


class _OrbaxWriteFailureFilter(logging.Filter):
  """orbax logs a failed background write with its traceback (hundreds of lines, from each
  writer thread) before the failure reaches the run, which then reports it as one line
  (`writing`): those log records are dropped, and so is its warning when a resumed run
  replaces the unfinished save of a killed one; every other orbax record passes."""

  def filter(self, record: logging.LogRecord) -> bool:
    if "orbax" not in (record.pathname or ""):
      return True
    if "Removing existing directory since it is not finalized" in record.getMessage():
      return False  # a resumed run replacing the save a kill interrupted: expected
    try:
      e = record.exc_info[1] if record.exc_info else Exception(record.getMessage())
    except Exception:  # pylint: disable=broad-except  (a malformed record: keep it)
      return True
    return write_errno(e) is None


logging.getLogger("absl").addFilter(_OrbaxWriteFailureFilter())

# Bytes a checkpoint takes beyond its arrays' (orbax's metadata files, measured ~40 KB).
_CHECKPOINT_OVERHEAD = 64 * 1024

# Keys that may differ between a run and its --resume without making it a different experiment.
_RUN_ONLY_KEYS = ("resume", "workdir", "log_every", "diagnostics", "parallel")


def host_info() -> str:
  """The CPU this process runs on: model, logical CPUs and the widest x86 vector extension,
  e.g. "AMD EPYC, 2 CPUs, AVX2".

  XLA:CPU emits vector code for the extensions it finds, so the same run on two hosts can
  differ in its last digits (and, over a training run, in more): a record says where it ran.
  """
  model, flags = "", set()
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        key, _, value = line.partition(":")
        if key.strip() == "model name" and not model:
          model = value.strip()
        elif key.strip() == "flags" and not flags:
          flags = set(value.split())
        if model and flags:
          break
  except OSError:  # not Linux: the platform module's coarser names
    pass
  model = model or platform.processor() or platform.machine() or "unknown CPU"
  isa = next((name for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"))
              if flag in flags), "")
  return ", ".join(x for x in (model, f"{os.cpu_count()} CPUs", isa) if x)


def environment_info() -> Dict[str, Any]:
  return {"al_jax_version": al_jax.__version__, "jax_version": jax.__version__,
          "host": host_info(), "backend": jax.default_backend(),
          "devices": [str(d) for d in jax.devices()], "device_count": jax.device_count(),
          "device_kind": jax.devices()[0].device_kind,
          # Which process wrote this workdir (the only one; see the module docstring).
          "process_index": jax.process_index(), "process_count": jax.process_count()}


def atomic_write(path: str, text: str) -> None:
  tmp = path + ".tmp"
  with writing(path):
    try:
      with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
      os.replace(tmp, path)
    except OSError:
      with contextlib.suppress(OSError):
        os.remove(tmp)  # a half-written temporary would only take more space
      raise


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
    self._saving: Optional[int] = None  # the step of the asynchronous save in flight
    self._lock = None
    # Process 0 writes; with several processes the others only take part in the collectives.
    self.writer = parallel.is_writer()
    self.multi_process = parallel.process_count() > 1

  def on_writer(self, fn, *args, **kwargs):
    """`fn(*args, **kwargs)` on the writing process alone (al_jax.parallel.on_writer)."""
    return parallel.on_writer(fn, *args, **kwargs)

  # --- experiment identity ---------------------------------------------------------------
  def holds_experiment(self) -> bool:
    return os.path.exists(self.config_path)

  def start(self, config: Dict[str, Any], resume: bool) -> None:
    """Creates the workdir, or checks that `--resume` continues the same experiment."""
    self.on_writer(self._start, config, resume)

  def _start(self, config: Dict[str, Any], resume: bool) -> None:
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
      if os.path.isdir(self.path) and not self._only_skeleton():
        raise ALError(f"workdir {self.path} is not empty and holds no experiment; "
                      "choose another --workdir")
    fresh = not self.holds_experiment()
    with writing(self.path):
      os.makedirs(self.pools_dir, exist_ok=True)
      os.makedirs(self.ckpt_dir, exist_ok=True)
    self._acquire_lock()
    try:
      atomic_write(self.config_path, json.dumps(
          {"config": config, "environment": environment_info()}, indent=2, sort_keys=True))
    except ALError:
      self.close()  # the caller's run never starts: release the lock now
      if fresh:  # leave the directory as it was, so that the same command can be rerun
        for leftover in (os.path.join(self.path, ".lock"), self.pools_dir, self.ckpt_dir):
          with contextlib.suppress(OSError):
            (os.rmdir if os.path.isdir(leftover) else os.remove)(leftover)
      raise

  def _only_skeleton(self) -> bool:
    """The directory holds nothing or only what a start killed before config.json was
    written leaves (empty pools/ and checkpoints/, the lock, a torn config.json.tmp)."""
    for name in os.listdir(self.path):
      full = os.path.join(self.path, name)
      if name in (".lock", "config.json.tmp"):
        continue
      if name in ("pools", "checkpoints") and os.path.isdir(full) and not os.listdir(full):
        continue
      return False
    return True

  def _acquire_lock(self) -> None:
    """One process per workdir: a second run (or --resume) while one is alive is refused."""
    with writing(os.path.join(self.path, ".lock")):
      self._lock = open(os.path.join(self.path, ".lock"), "w")
    try:
      fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      self._lock.close()
      self._lock = None
      raise ALError(f"workdir {self.path} is in use by another running process") from None

  # --- per-cycle files -------------------------------------------------------------------
  def read_results(self) -> List[Dict[str, Any]]:
    """The rows of finished cycles (several processes: process 0's, on every process)."""
    if self.multi_process:
      return parallel.broadcast_json(self._read_results() if self.writer else None)
    return self._read_results()

  def _read_results(self) -> List[Dict[str, Any]]:
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
    self.on_writer(self._truncate_results, keep_below_cycle)

  def _truncate_results(self, keep_below_cycle: int) -> None:
    rows = [r for r in self._read_results() if r["cycle"] < keep_below_cycle]
    atomic_write(self.results_path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))

  def append_result(self, row: Dict[str, Any]) -> None:
    self.on_writer(self._append_result, row)

  def _append_result(self, row: Dict[str, Any]) -> None:
    size = os.path.getsize(self.results_path) if os.path.exists(self.results_path) else 0
    with writing(self.results_path):
      try:
        with open(self.results_path, "a") as f:
          f.write(json.dumps(row, sort_keys=True) + "\n")
          f.flush()
          os.fsync(f.fileno())
      except OSError:
        # No torn line: the finished cycles' rows stay exactly as they were.
        with contextlib.suppress(OSError):
          os.truncate(self.results_path, size)
        raise

  def save_pool(self, cycle: int, labeled: np.ndarray) -> None:
    self.on_writer(self._save_pool, cycle, labeled)

  def _save_pool(self, cycle: int, labeled: np.ndarray) -> None:
    tmp = os.path.join(self.pools_dir, f".cycle_{cycle}.npy")
    path = os.path.join(self.pools_dir, f"cycle_{cycle}.npy")
    with writing(path):
      try:
        np.save(tmp, np.asarray(labeled, np.int64))
        os.replace(tmp, path)
      except OSError:
        with contextlib.suppress(OSError):
          os.remove(tmp)
        raise

  def write_json(self, name: str, obj: Any) -> None:
    self.on_writer(atomic_write, os.path.join(self.path, name),
                   json.dumps(obj, indent=2, sort_keys=True))

  # --- checkpoints -----------------------------------------------------------------------
  @property
  def manager(self) -> ocp.CheckpointManager:
    if self._mngr is None:
      if self.multi_process:
        # Process 0 alone saves host copies: orbax's barriers then span only process 0
        # (active_processes), and it cannot create the directory itself (start() did).
        options = ocp.CheckpointManagerOptions(
            max_to_keep=2, create=False,
            multiprocessing_options=ocp.options.MultiprocessingOptions(
                primary_host=0, active_processes={0}))
      else:
        options = ocp.CheckpointManagerOptions(max_to_keep=2, create=True)
      self._mngr = ocp.CheckpointManager(self.ckpt_dir, options=options)
    return self._mngr

  def latest_checkpoint(self) -> Optional[int]:
    return self.manager.latest_step()

  def _step_dir(self, step: Optional[int]) -> str:
    return os.path.join(self.ckpt_dir, str(step)) if step is not None else self.ckpt_dir

  def _wait_for_checkpoint(self) -> None:
    """Waits for the asynchronous save in flight; its failed write becomes the one line."""
    if self._mngr is not None:
      with writing(self._step_dir(self._saving)):
        self._mngr.wait_until_finished()
        self._mngr.check_for_errors()
    self._saving = None

  def save_checkpoint(self, cycle: int, state: Any, al_state: Dict[str, Any]) -> None:
    """Model state and AL bookkeeping in one checkpoint (big_vision keeps both together).

    The save runs in the background; the previous one (a whole cycle ago) is waited for
    first, so a full disk is reported with the checkpoint it hit.

    Several processes: the state's arrays span every process's devices; replicated, each
    process holds the whole of them, and process 0 saves its host copy."""
    if self.multi_process:
      state = parallel.fetch(state)  # every process: a sharded leaf is a collective gather
      self.on_writer(self._save_checkpoint, cycle, state, al_state)
    else:
      self._save_checkpoint(cycle, state, al_state)

  def _save_checkpoint(self, cycle: int, state: Any, al_state: Dict[str, Any]) -> None:
    self._wait_for_checkpoint()
    self._check_space(cycle, (state, al_state))
    with writing(self._step_dir(cycle)):
      self._saving = cycle
      self.manager.save(cycle, args=ocp.args.Composite(
          state=ocp.args.StandardSave(state), al=ocp.args.StandardSave(al_state)))

  def _check_space(self, cycle: int, tree: Any) -> None:
    """Refuses, as a failed write, a checkpoint the disk has no room for, before orbax
    starts: a background save that runs out of space fails in writer threads that keep
    reporting after the run has stopped (hundreds of lines), while this is one line."""
    need = sum(int(getattr(x, "nbytes", np.asarray(x).nbytes))
               for x in jax.tree_util.tree_leaves(tree)) + _CHECKPOINT_OVERHEAD
    try:
      free = shutil.disk_usage(self.path).free
    except OSError:
      return  # no figure to check against: the write itself will tell
    if free < need:
      raise write_error(self._step_dir(cycle), OSError(errno.ENOSPC, "No space left"))

  def _restore(self, cycle: int, abstract_state: Any):
    """(state, al_state), or ALError whose message is why checkpoint `cycle` is unreadable."""
    try:
      out = self.manager.restore(cycle, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state), al=ocp.args.StandardRestore()))
    except Exception as e:  # orbax raises many types for torn or foreign files
      msg = str(e).splitlines()[0] if str(e) else type(e).__name__
      msg = msg.split(" See full TensorStore details")[0]
      raise ALError(f"unreadable: {msg[:200]}") from None
    return out["state"], out["al"]

  def restore_checkpoint(self, cycle: int, abstract_state: Any):
    try:
      return self._restore(cycle, abstract_state)
    except ALError as e:
      raise ALError(f"checkpoint {cycle} in {self.ckpt_dir} is corrupt or {e}") from None

  def _check_checkpoint(self, step: int, al: Dict[str, Any],
                        rows: Dict[int, Dict[str, Any]]) -> Optional[str]:
    """Why checkpoint `step` disagrees with results.jsonl, or None when it agrees: it is
    cycle `step`'s, results.jsonl has that cycle's row, and the next labeled set is the
    row's labeled set plus its selection, inside the row's pool."""
    try:
      cycle, labeled = int(np.asarray(al["cycle"])), np.asarray(al["labeled"])
    except (KeyError, TypeError, ValueError) as e:
      return f"its AL state is incomplete ({type(e).__name__}: {e})"
    if cycle != step:
      return f"it holds cycle {cycle}"
    row = rows.get(step)
    if row is None:
      return f"results.jsonl has no row for cycle {step}"
    want = int(row["num_labeled"]) + int(row["num_selected"])
    if labeled.ndim != 1 or len(labeled) != want:
      return (f"its labeled set has {labeled.size} points, the results row says "
              f"{row['num_labeled']} + {row['num_selected']} selected")
    if len(labeled) and (labeled.min() < 0 or labeled.max() >= int(row["pool_size"])
                         or len(np.unique(labeled)) != len(labeled)):
      return f"its labeled set is not a set of distinct indices below {row['pool_size']}"
    return None

  def restore_latest(self, abstract_state: Any, log: Callable[[str], None] = print
                     ) -> Optional[Tuple[int, Any, Dict[str, Any]]]:
    """The newest checkpoint that restores and agrees with results.jsonl, as
    (step, state, al_state); None when there is no checkpoint.

    Newer checkpoints that fail (torn or garbled files, a disagreeing AL state) are moved
    to `corrupt_checkpoints/` (kept for inspection, out of orbax's way) and one line says
    which one the run continues from. When none restores: one-line ALError.

    Several processes: process 0 restores (and sets aside) and broadcasts the step, the AL
    state and the model state (host arrays) to the others."""
    if not self.multi_process:
      return self._restore_latest(abstract_state, log)
    found = self.on_writer(self._restore_latest, abstract_state, log)
    head = None
    if found is not None:
      step, _, al = found
      head = {"step": int(step), "cycle": int(np.asarray(al["cycle"])),
              "labeled": np.asarray(al["labeled"]).astype(np.int64).tolist()}
    head = parallel.broadcast_json(head)
    if head is None:
      return None
    from jax.experimental import multihost_utils
    state = (jax.tree_util.tree_map(lambda a, x: np.asarray(x, a.dtype), abstract_state,
                                    found[1]) if self.writer else
             jax.tree_util.tree_map(lambda a: np.zeros(a.shape, a.dtype), abstract_state))
    state = multihost_utils.broadcast_one_to_all(state)
    return head["step"], state, {"cycle": np.int64(head["cycle"]),
                                 "labeled": np.asarray(head["labeled"], np.int64)}

  def _restore_latest(self, abstract_state: Any, log: Callable[[str], None] = print
                      ) -> Optional[Tuple[int, Any, Dict[str, Any]]]:
    steps = sorted(self.manager.all_steps(), reverse=True)
    if not steps:
      return None
    rows = {int(r["cycle"]): r for r in self._read_results()}
    bad: List[Tuple[int, str]] = []
    for step in steps:
      try:
        state, al = self._restore(step, abstract_state)
        problem = self._check_checkpoint(step, al, rows)
      except ALError as e:
        problem = str(e)
      if problem is None:
        if bad:
          self._set_aside([s for s, _ in bad])
          log("; ".join(f"checkpoint {s} is damaged ({p})" for s, p in bad)
              + f": moved to {os.path.join(self.path, 'corrupt_checkpoints')}, "
              f"resuming from checkpoint {step}")
        return step, state, al
      bad.append((step, " ".join(problem.split())))
    raise ALError(f"no checkpoint in {self.ckpt_dir} restores: "
                  + "; ".join(f"checkpoint {s} is damaged ({p})" for s, p in bad)
                  + "; remove the workdir to start the experiment afresh")

  def _set_aside(self, steps: List[int]) -> None:
    dest = os.path.join(self.path, "corrupt_checkpoints")
    with writing(dest):
      os.makedirs(dest, exist_ok=True)
      for step in steps:
        target, k = os.path.join(dest, str(step)), 1
        while os.path.exists(target):
          target, k = os.path.join(dest, f"{step}.{k}"), k + 1
        os.replace(self._step_dir(step), target)
    self.manager.reload()  # orbax forgets the moved steps

  def close(self) -> None:
    try:
      if self._mngr is not None:
        failed = None
        try:
          self._wait_for_checkpoint()
        except ALError as e:
          failed = e
        mngr, self._mngr, self._saving = self._mngr, None, None
        try:
          with writing(self.ckpt_dir):
            mngr.close()  # waits again: a failed save raises its error a second time
        except Exception:  # pylint: disable=broad-except
          if failed is None:
            raise
        if failed is not None:
          raise failed
    finally:
      if self._lock is not None:
        self._lock.close()  # releases the flock
        self._lock = None
