"""Studies: every method × seed under identical initial pools per seed (paired design).

A study lives in one directory: `study.json` (what it is) and one run workdir per
(method, seed) at `<method>/seed_<s>/`. Re-running the study command with
`--resume` skips finished runs and resumes killed ones, so a study survives
kills as a whole. Because the initial pool depends only on (seed, dataset,
initial size), all methods of a seed start from the same labeled set.

Spreading a study:

* `workers=N` runs its members in N processes on this host. Each process is pinned to its
  own accelerator when there are several (`CUDA_VISIBLE_DEVICES`), or on CPU to its own
  share of the cores (CPU affinity and thread-count variables), because N processes that
  each start one thread per core would fight over the same cores. Members are handed out
  one at a time, so a long run does not hold back the short ones queued behind it.
* `shard=(K, N)` runs only members K, K+N, K+2N, … (0 ≤ K < N) of the study's fixed member
  order: N invocations — a SLURM job array, several hosts on a shared filesystem — cover
  every member exactly once. Each run's workdir lock keeps two processes off one run.

A killed worker (or shard) leaves its run resumable: the next invocation with `--resume`
continues it from its last finished cycle.
"""

import contextlib
import json
import os
import queue
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from al_jax import ALError


def _default_log(msg: str) -> None:
  import logging  # the al_jax logger, as al_jax.loop uses it
  logging.getLogger("al_jax").info(msg)


def worker_log(prefix: str, stream=None) -> Callable[[str], None]:
  """A worker's log: one prefixed line per message, written to stdout in one call.

  The workers share their parent's stdout (often one log file). `print` writes the text and
  its newline separately, which an unbuffered stdout (PYTHONUNBUFFERED, common under
  containers and batch schedulers) turns into two writes, so another process's line could
  land between them.
  """
  def log(msg: str) -> None:
    out = sys.stdout if stream is None else stream
    out.write(f"{prefix} {msg}\n")
    out.flush()
  return log


def run_dirname(method: str, seed: int) -> str:
  return os.path.join(method.replace("/", "_"), f"seed_{seed}")


def parse_shard(text: Optional[str]) -> Optional[Tuple[int, int]]:
  """`"K/N"` → (K, N) with 0 ≤ K < N; None or "" → None."""
  if not text:
    return None
  try:
    k, n = (int(v) for v in text.split("/"))
  except ValueError:
    raise ALError(f"--shard must be K/N with integers 0 <= K < N, got {text!r}") from None
  if n < 1 or not 0 <= k < n:
    raise ALError(f"--shard must be K/N with integers 0 <= K < N, got {text!r}")
  return k, n


def shard_indices(num_members: int, shard: Optional[Tuple[int, int]]) -> List[int]:
  """The member indices of `shard` (round robin, so every shard gets a mix of methods)."""
  if shard is None:
    return list(range(num_members))
  k, n = shard
  return list(range(k, num_members, n))


def _write_spec(path: str, spec: Dict) -> None:
  # Hidden temporary name: shards starting together see a directory holding only this.
  tmp = os.path.join(os.path.dirname(path), f".study.json.{os.getpid()}")
  with open(tmp, "w") as f:
    json.dump(spec, f, indent=2)
  os.replace(tmp, path)


def any_run_started(configs, workdir: str) -> bool:
  """Whether any of the study's runs (in `workdir`) has started: its run directory holds an
  experiment."""
  from al_jax import results as results_lib  # pylint: disable=g-import-not-at-top
  return any(results_lib.Workdir(os.path.join(workdir, run_dirname(c.method, c.seed)))
             .holds_experiment() for c in configs)


def finished_rows(config, rundir: str) -> Optional[List[Dict]]:
  """The result rows of a run that finished every cycle of `config`, else None."""
  from al_jax import results as results_lib  # pylint: disable=g-import-not-at-top
  wd = results_lib.Workdir(rundir)
  rows = wd.read_results() if wd.holds_experiment() else []
  return rows if len(rows) >= config.al.cycles else None


def all_finished(configs, workdir: str) -> bool:
  """Whether every one of the study's runs (in `workdir`) finished all its cycles."""
  return all(finished_rows(c, os.path.join(workdir, run_dirname(c.method, c.seed)))
             is not None for c in configs)


def _prepare_workdir(spec: Dict, workdir: str, resume: bool, sharded: bool,
                     mine_started: Callable[[], bool],
                     any_started: Callable[[], bool]) -> None:
  path = os.path.join(workdir, "study.json")
  if os.path.exists(path):
    try:
      with open(path) as f:
        old = json.load(f)
    except (OSError, ValueError) as e:
      raise ALError(f"workdir {workdir}: study.json is unreadable ({e})") from None
    # A study none of whose runs started (it stopped on a setting the data refuses, such as a
    # budget larger than the pool) holds nothing: the corrected command starts it afresh.
    # Shards keep the stricter rule, since another shard may be about to start a run.
    fresh = not sharded and not any_started()
    if old != spec:
      if not fresh:
        raise ALError(f"workdir {workdir} holds a different study; use another --workdir")
      from al_jax.writes import writing  # pylint: disable=g-import-not-at-top
      with writing(path):
        _write_spec(path, spec)
      return
    # Another shard may have created the study; this one only needs --resume to continue
    # runs of its own.
    if not resume and not fresh and (not sharded or mine_started()):
      raise ALError(f"workdir {workdir} already holds this study; pass --resume to continue it")
    return
  if resume and not sharded:
    raise ALError(f"--resume: workdir {workdir} holds no study (no study.json)")
  if os.path.isdir(workdir) and any(not n.startswith(".study.json")
                                    for n in os.listdir(workdir)):
    raise ALError(f"workdir {workdir} is not empty and holds no study; choose another")
  from al_jax.writes import writing  # pylint: disable=g-import-not-at-top
  with writing(path):  # a full disk or a read-only place: one line naming it
    os.makedirs(workdir, exist_ok=True)
    _write_spec(path, spec)


def run_study(configs: List, workdir: str, resume: bool,
              log: Callable[[str], None] = _default_log, *,
              shard: Optional[Tuple[int, int]] = None, workers: int = 1,
              progress=None, progress_mode: str = "lines", progress_interval: float = 60.0,
              tensorboard: bool = False) -> Dict[str, List[Dict]]:
  """Runs (or continues) the study's members; returns {run dir: result rows}.

  Args:
    configs: every member's config, in the study's fixed order.
    workdir: the study directory.
    resume: continue an existing study.
    log: progress lines.
    shard: (K, N) to run only the K-th of N disjoint slices of the members.
    workers: processes to run members in (1: this process).
    progress: an `al_jax.progress.Progress` for runs in this process.
    progress_mode: the mode worker processes use ("lines" or "off"): N bars on one terminal
      would overwrite each other.
    progress_interval: seconds between two of a worker's plain progress lines.
    tensorboard: write TensorBoard event files in every run's workdir.
  """
  from al_jax import results as results_lib  # pylint: disable=g-import-not-at-top
  if workers < 1:
    raise ALError(f"--workers must be at least 1, got {workers}")
  # A run's protocol (a paper's schedule) is part of what it is: the same method under
  # another protocol is another study.
  spec = {"runs": [{"method": c.method, "seed": c.seed, "dir": run_dirname(c.method, c.seed),
                    **({"protocol": c.protocol} if c.get("protocol") else {})}
                   for c in configs],
          "dataset": configs[0].dataset, "preset": configs[0].preset}
  mine = shard_indices(len(configs), shard)
  rundir = lambda i: os.path.join(workdir, run_dirname(configs[i].method, configs[i].seed))
  _prepare_workdir(spec, workdir, resume, shard is not None,
                   lambda: any_run_started([configs[i] for i in mine], workdir),
                   lambda: any_run_started(configs, workdir))
  if shard is not None:
    log(f"shard {shard[0]}/{shard[1]}: {len(mine)} of the study's {len(configs)} runs")
  out, todo = {}, []
  for i in mine:
    c, rd = configs[i], rundir(i)
    rows = finished_rows(c, rd)
    if rows is not None:
      log(f"[{i + 1}/{len(configs)}] {c.method} seed {c.seed}: finished, skipped")
      out[rd] = rows
    else:
      todo.append((i, c, rd, results_lib.Workdir(rd).holds_experiment()))
  if workers > 1 and todo:
    # Even a lone remaining run goes to a worker: XLA:CPU partitions its reductions by the
    # process's core count, so the same run in this (unpinned) process and in a one-core worker
    # differs in the last float bits, and a resumed study would not reproduce an
    # uninterrupted one.
    out.update(_run_in_workers(todo, len(configs), workers, log, progress_mode,
                               progress_interval, tensorboard))
  else:
    from al_jax import loop  # pylint: disable=g-import-not-at-top
    for i, c, rd, started in todo:
      log(f"[{i + 1}/{len(configs)}] {c.method} seed {c.seed}: "
          + ("resuming" if started else "starting"))
      out[rd] = loop.run(c, rd, resume=started, log=log, progress=progress,
                         tensorboard=tensorboard)
  return {rundir(i): out[rundir(i)] for i in mine if rundir(i) in out}


# --- worker processes -----------------------------------------------------------------------
def accelerators() -> Tuple[str, List[str]]:
  """(platform, device ids) of this host without initialising JAX in this process.

  The parent of N workers must not start a GPU client itself: it would reserve memory on
  every GPU for the whole study. So it asks a short-lived subprocess.
  """
  if os.environ.get("JAX_PLATFORMS", "").split(",")[0] == "cpu":
    return "cpu", []
  visible = os.environ.get("CUDA_VISIBLE_DEVICES")
  if visible:
    return "gpu", [d for d in visible.split(",") if d.strip()]
  probe = ("import jax; d = jax.local_devices(); "
           "print(d[0].platform, len(d))")
  env = dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE="false", TF_CPP_MIN_LOG_LEVEL="3")
  try:
    r = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                       timeout=120)
    platform, count = r.stdout.split()[-2:]
  except (subprocess.SubprocessError, ValueError):
    return "cpu", []
  return platform, [str(i) for i in range(int(count))] if platform != "cpu" else []


def worker_slots(workers: int, platform: str, devices: Sequence[str],
                 cpus: Sequence[int]) -> List[Dict]:
  """Environment and CPU set of each worker.

  On GPUs, worker w sees GPU w mod #GPUs alone; workers sharing a GPU split its memory
  (each JAX process would otherwise reserve 75% of it, and the second would run out). On
  CPU, worker w gets its own contiguous share of the cores and matching thread-count
  variables.
  """
  slots = []
  cpus = sorted(cpus) or [0]
  for w in range(workers):
    env: Dict[str, str] = {}
    cpu_set = list(cpus)
    if platform in ("gpu", "cuda", "rocm") and devices:
      env["CUDA_VISIBLE_DEVICES"] = devices[w % len(devices)]
      sharing = -(-workers // len(devices))
      if sharing > 1:
        env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{0.9 / sharing:.3f}"
    elif platform == "cpu":
      if workers <= len(cpus):
        lo, hi = w * len(cpus) // workers, (w + 1) * len(cpus) // workers
        cpu_set = cpus[lo:hi]
      else:  # more workers than cores: one core each, shared round robin
        cpu_set = [cpus[w % len(cpus)]]
      threads = str(len(cpu_set))
      for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = threads
    slots.append({"env": env, "cpus": cpu_set})
  return slots


def active_slots(workers: int, runs: int, platform: str, devices: Sequence[str],
                 cpus: Sequence[int]) -> List[Dict]:
  """The first `runs` slots of the requested `workers`-slot layout.

  However few runs an invocation has left, each gets the cores it would have had in the full
  layout: a run's core count (and with it XLA:CPU's float rounding) does not depend on how
  many of the study's runs remain.
  """
  return worker_slots(workers, platform, devices, cpus)[:runs]


def _exit_with_parent(poll_seconds: float = 1.0) -> None:
  """Ends this worker when the study process that spawned it dies (killed, SIGTERM): an
  orphan would keep training and hold its run's workdir lock, so the next invocation could
  not resume that run. Finished cycles are on disk; the lock goes with the process."""
  import threading  # pylint: disable=g-import-not-at-top
  parent = os.getppid()

  def watch():
    while True:
      time.sleep(poll_seconds)
      if os.getppid() != parent:
        os._exit(1)  # pylint: disable=protected-access

  threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def _worker(slot: Dict, tasks, results, stop, progress_mode: str, progress_interval: float,
            tensorboard: bool) -> None:
  """A worker process: pin itself, then run members from `tasks` until told to stop."""
  _exit_with_parent()
  os.environ.update(slot["env"])  # before JAX creates its client in this process
  if hasattr(os, "sched_setaffinity") and slot["cpus"]:
    try:
      os.sched_setaffinity(0, slot["cpus"])
    except OSError:
      pass  # a container may forbid it; thread-count variables still apply
  import logging  # pylint: disable=g-import-not-at-top
  from al_jax import loop  # pylint: disable=g-import-not-at-top
  from al_jax import progress as progress_lib  # pylint: disable=g-import-not-at-top
  while not stop.is_set():
    try:
      task = tasks.get(timeout=0.2)
    except queue.Empty:
      continue
    if task is None:
      return
    i, config, rd, started = task
    log = worker_log(f"[{config.method} seed {config.seed}]")

    results.put(("start", i, os.getpid()))
    log("resuming" if started else "starting")
    try:
      prog = (progress_lib.Progress(progress_mode, progress_interval, log=log)
              if progress_mode != "off" else None)
      rows = loop.run(config, rd, resume=started, log=log, progress=prog,
                      tensorboard=tensorboard)
      results.put(("done", i, rows))
    except Exception as e:  # pylint: disable=broad-except
      # The parent prints it as the study's one-line error and stops handing out members.
      from al_jax import ALError as _ALError  # pylint: disable=g-import-not-at-top
      msg = str(e) if isinstance(e, _ALError) else f"{type(e).__name__}: {e}"
      logging.getLogger("al_jax").debug("worker error", exc_info=True)
      results.put(("error", i, f"{config.method} seed {config.seed}: {msg}"))


@contextlib.contextmanager
def _environ(env: Dict[str, str]):
  """This process's environment plus `env` while a worker is spawned.

  A spawned worker re-imports the study's main module, and with it numpy, before `_worker`
  runs: OpenBLAS sizes its thread pool once, from OPENBLAS_NUM_THREADS at load, so the
  worker's thread limits must be in its environment from the start. Set only in `_worker`,
  they came too late: each worker pinned to one core kept one OpenBLAS thread per core of
  the machine, and the threads took turns on the one core (numpy's `eigvalsh` of 510 × 510
  kernels, CRC's λ⁺_min, ran 4.6× slower, 149 vs 32 ms).
  """
  saved = {k: os.environ.get(k) for k in env}
  os.environ.update(env)
  try:
    yield
  finally:
    for k, v in saved.items():
      if v is None:
        os.environ.pop(k, None)
      else:
        os.environ[k] = v


def start_workers(procs, slots: Sequence[Dict]) -> None:
  """Starts each spawned worker with its slot's environment from its first instruction."""
  for p, slot in zip(procs, slots):
    with _environ(slot["env"]):
      p.start()


def _run_in_workers(todo, num_members: int, workers: int, log, progress_mode: str,
                    progress_interval: float, tensorboard: bool) -> Dict[str, List[Dict]]:
  import multiprocessing  # pylint: disable=g-import-not-at-top
  # spawn, not fork: a forked child would inherit this process's threads and any JAX state.
  ctx = multiprocessing.get_context("spawn")
  platform, devices = accelerators()
  cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
      list(range(os.cpu_count() or 1))
  slots = active_slots(workers, len(todo), platform, devices, cpus)
  workers = len(slots)
  tasks, results, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
  for i, c, rd, started in todo:
    tasks.put((i, c, rd, started))
  for _ in range(workers):
    tasks.put(None)
  log(f"{len(todo)} runs in {workers} worker processes ("
      + "; ".join(_describe(s, platform) for s in slots) + ")")
  procs = [ctx.Process(target=_worker, args=(s, tasks, results, stop, progress_mode,
                                              progress_interval, tensorboard)) for s in slots]
  start_workers(procs, slots)
  rundir = {i: rd for i, _, rd, _ in todo}
  labels = {i: f"{c.method} seed {c.seed}" for i, c, _, _ in todo}
  out, running, errors = {}, {}, []
  try:
    while len(out) + len(errors) < len(todo):
      try:
        kind, i, payload = results.get(timeout=1.0)
      except queue.Empty:
        dead = {p.pid: p.exitcode for p in procs if p.exitcode not in (None, 0)}
        for i in [i for i, pid in running.items() if pid in dead]:
          errors.append(f"the worker running {rundir[i]} died (exit code "
                        f"{dead[running.pop(i)]}); rerun the study with --resume to continue it")
        if all(p.exitcode is not None for p in procs):
          break  # no worker left: what was not started stays for the next invocation
        continue
      if kind == "start":
        running[i] = payload
      elif kind == "done":
        running.pop(i, None)
        out[rundir[i]] = payload
        log(f"[{i + 1}/{num_members}] {labels[i]}: finished")
      else:
        running.pop(i, None)
        errors.append(payload)
        stop.set()  # as a sequential study stops at its first error
  finally:
    stop.set()
    for p in procs:
      p.join(timeout=None if not errors else 600)
  if errors:
    raise ALError(errors[0] + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""))
  if len(out) < len(todo):
    codes = sorted({p.exitcode for p in procs if p.exitcode})
    raise ALError(f"{len(todo) - len(out)} runs did not finish: the worker processes exited "
                  f"(exit codes {', '.join(map(str, codes)) or 'none'}); rerun the study with "
                  "--resume to continue them")
  return out


def _describe(slot: Dict, platform: str) -> str:
  if "CUDA_VISIBLE_DEVICES" in slot["env"]:
    return f"GPU {slot['env']['CUDA_VISIBLE_DEVICES']}"
  if platform == "cpu":
    return f"cores {','.join(map(str, slot['cpus']))}"
  return platform
