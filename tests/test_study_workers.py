"""Studies spread over processes: --workers on one host, --shard over a job array or hosts."""

import json
import os

import numpy as np
import pytest

from al_jax import ALError
from al_jax.recording import TIMING_FIELDS
from experiments import report, study
from tests import blas_probe
from tests.conftest import tiny_config

quiet = lambda s: None
# Wall-clock fields differ between any two runs; everything else must not.
_TIMING = TIMING_FIELDS


def _rows(path):
  with open(os.path.join(path, "results.jsonl")) as f:
    return [{k: v for k, v in json.loads(l).items() if k not in _TIMING} for l in f]


def _configs():
  return [tiny_config(m, "synthetic", seed=s, **{"al.cycles": 2})
          for m in ("random", "entropy") for s in (0, 1)]


def test_shards_cover_every_run_once_and_workers_match_sequential(tmp_path, monkeypatch):
  cfgs = _configs()
  every = {os.path.join(str(tmp_path / "seq"), study.run_dirname(c.method, c.seed))
           for c in cfgs}
  seq = str(tmp_path / "seq")
  first = study.run_study(cfgs, seq, resume=False, log=quiet, shard=(0, 2))
  # Whatever has finished is already a report.
  partial = report.write_report(seq, target=0.0)
  assert sum(r["seeds"] for r in partial["summary"]) == len(first) == 2
  # The second shard joins the study the first one created, without --resume.
  second = study.run_study(cfgs, seq, resume=False, log=quiet, shard=(1, 2))
  assert set(first).isdisjoint(second) and set(first) | set(second) == every
  assert set(study.shard_indices(4, (0, 2))) | set(study.shard_indices(4, (1, 2))) == {0, 1, 2, 3}
  with pytest.raises(ALError, match="pass --resume"):
    study.run_study(cfgs, seq, resume=False, log=quiet, shard=(0, 2))
  logs = []
  study.run_study(cfgs, seq, resume=True, log=logs.append, shard=(1, 2))
  assert sum("finished, skipped" in l for l in logs) == 2
  merged = report.write_report(seq, target=0.0)
  assert {r["method"]: r["seeds"] for r in merged["summary"]} == {"random": 2, "entropy": 2}

  par = str(tmp_path / "par")
  # XLA:CPU compiles for the thread count of the compiling process; the suite's persistent
  # compilation cache would let this process later load a one-core worker's executables
  # (and the workers this process's), mixing the two. Workers compile their own here.
  monkeypatch.setenv("JAX_ENABLE_COMPILATION_CACHE", "false")
  out = study.run_study(cfgs, par, resume=False, log=quiet, workers=2)
  assert len(out) == 4
  for c in cfgs:
    d = study.run_dirname(c.method, c.seed)
    want, got = _rows(os.path.join(seq, d)), _rows(os.path.join(par, d))
    assert [r["test_accuracy"] for r in out[os.path.join(par, d)]] == [
        r["test_accuracy"] for r in want]
    # Same selections, same accuracy, same everything but the last bits of the float
    # metrics: a worker pinned to one core runs XLA:CPU with one thread, which splits
    # reductions differently from this process's two (measured: test_nll differs by
    # ~1e-7 relative; BUILD_NOTES "Harness").
    floats = ("test_nll", "test_ece", "test_brier")
    strip = lambda rows: [{k: v for k, v in r.items() if k not in floats} for r in rows]
    assert strip(got) == strip(want), d
    for key in floats:
      assert [r[key] for r in got] == pytest.approx([r[key] for r in want], rel=1e-5), d
    for k in range(c.al.cycles):
      np.testing.assert_array_equal(
          np.load(os.path.join(par, d, "pools", f"cycle_{k}.npy")),
          np.load(os.path.join(seq, d, "pools", f"cycle_{k}.npy")))


def test_worker_slots_pin_devices_and_split_cores():
  gpus = study.worker_slots(4, "gpu", ["0", "1"], range(8))
  assert [s["env"]["CUDA_VISIBLE_DEVICES"] for s in gpus] == ["0", "1", "0", "1"]
  assert gpus[0]["env"]["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.450"  # two share each GPU
  cpus = study.worker_slots(2, "cpu", [], [0, 1, 2, 3])
  assert [s["cpus"] for s in cpus] == [[0, 1], [2, 3]]
  assert cpus[1]["env"]["OMP_NUM_THREADS"] == "2"
  over = study.worker_slots(3, "cpu", [], [0, 1])
  assert [s["cpus"] for s in over] == [[0], [1], [0]]
  one_gpu = study.worker_slots(2, "gpu", ["0"], range(4))  # both on it, half its memory each
  assert [s["env"]["XLA_PYTHON_CLIENT_MEM_FRACTION"] for s in one_gpu] == ["0.450", "0.450"]


def test_a_lone_remaining_run_runs_on_a_workers_cores(tmp_path, monkeypatch):
  # XLA:CPU's float rounding depends on the process's core count (a digits run's test Brier
  # on 1 core vs 2: 0.90489823 vs 0.90489835), so the last run of a resumed 2-worker study
  # must not run in the unpinned study process, nor in a worker holding every core.
  lone = study.active_slots(2, 1, "cpu", [], [0, 1])
  assert [s["cpus"] for s in lone] == [[0]] and lone[0]["env"]["OMP_NUM_THREADS"] == "1"
  assert [s["cpus"] for s in study.active_slots(4, 3, "cpu", [], range(8))] == [
      [0, 1], [2, 3], [4, 5]]
  sent = []
  monkeypatch.setattr(study, "_run_in_workers",
                      lambda todo, *a, **k: sent.append([c.seed for _, c, _, _ in todo]) or {})
  study.run_study(_configs()[:1], str(tmp_path / "s"), resume=False, workers=2,
                  log=lambda _: None)
  assert sent == [[_configs()[0].seed]]


@pytest.mark.skipif(not os.path.exists("/proc/self/environ"), reason="needs Linux /proc")
def test_a_worker_starts_with_its_thread_limits_before_numpy_loads():
  import multiprocessing
  ctx = multiprocessing.get_context("spawn")
  slots = study.worker_slots(2, "cpu", [], [0, 1])
  q = ctx.Queue()
  procs = [ctx.Process(target=blas_probe.report, args=(q,)) for _ in slots]
  study.start_workers(procs, slots)
  reports = [q.get(timeout=120) for _ in procs]
  for p in procs:
    p.join(timeout=60)
  assert [r[0] for r in reports] == [b"1", b"1"]
  # One OpenBLAS thread, the main one: a pool sized by the machine's cores would add one
  # thread per further core, all taking turns on the worker's one core.
  assert [r[1] for r in reports] == [1, 1]


def test_worker_environment_is_restored_in_the_parent(monkeypatch):
  monkeypatch.setenv("OMP_NUM_THREADS", "7")
  monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
  with study._environ({"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}):
    assert os.environ["OMP_NUM_THREADS"] == "1"
  assert os.environ["OMP_NUM_THREADS"] == "7"
  assert "OPENBLAS_NUM_THREADS" not in os.environ


def test_worker_error_is_the_study_error(tmp_path):
  cfgs = _configs()[:2]
  bad = tiny_config("random", "synthetic", seed=7, **{"al.cycles": 2, "al.initial": 10**6})
  with pytest.raises(ALError, match="random seed 7: initial pool 1000000 is larger"):
    study.run_study(cfgs + [bad], str(tmp_path / "s"), resume=False, log=quiet, workers=2)


class _Writes:
  """A stream that records each write call, as an unbuffered file descriptor would see it."""

  def __init__(self):
    self.writes = []

  def write(self, s):
    self.writes.append(s)

  def flush(self):
    pass


def test_a_worker_log_line_is_one_write():
  # Workers share the parent's stdout: a line written in two calls (text, then newline, as
  # print does) lets another process's line land between them under PYTHONUNBUFFERED.
  stream = _Writes()
  log = study.worker_log("[tod seed 4]", stream)
  log("starting")
  log("cycle 1/5 done | test acc 0.7554")
  assert stream.writes == ["[tod seed 4] starting\n", "[tod seed 4] cycle 1/5 done | test acc 0.7554\n"]


def test_a_worker_log_writes_where_stdout_points_at_call_time(capsys):
  log = study.worker_log("[random seed 0]")
  log("starting")
  assert capsys.readouterr().out == "[random seed 0] starting\n"
