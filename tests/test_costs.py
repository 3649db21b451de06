"""What a cycle costs (al_jax/costs.py, the rows' cost fields, the report's cost table) and the
persistent compilation cache's settings.

Timings are not compared between runs: only what holds whatever the machine's load and
whether the persistent cache is warm (a warm cache still traces and lowers, and its load is
timed as the backend compile).
"""

import os
import subprocess
import sys
import threading

import jax
import jax.numpy as jnp
import pytest

from al_jax import ALError, costs, loop
from al_jax.recording import TIMING_FIELDS
from experiments import report
from tests.conftest import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
quiet = lambda s: None


def test_compile_clock_counts_a_new_program_once_and_only_in_its_thread():
  f = jax.jit(lambda x: jnp.sin(x) * 3.0 + 1.0)  # a new function: nothing cached in memory
  x = jnp.ones((7, 5))
  x.block_until_ready()
  with costs.CompileClock() as first:
    f(x).block_until_ready()
  with costs.CompileClock() as again:
    f(x).block_until_ready()
  assert first.seconds > 0.0  # traced and lowered at least (compiled or loaded)
  assert again.seconds == 0.0  # the in-memory executable: no compile event at all
  # Another thread's compile is not charged to this one.
  g = jax.jit(lambda x: jnp.cos(x) - 2.0)
  with costs.CompileClock() as here:
    t = threading.Thread(target=lambda: g(x).block_until_ready())
    t.start()
    t.join()
  assert here.seconds == 0.0


def test_cycle_cost_fields():
  assert loop.cycle_cost(0.5, 1.25, 10, 2.0) == {
      "eval_seconds": 0.5, "compile_seconds": 1.25, "steps_per_second": 5.0}
  # No training step (or no time left once compiling is taken out): no rate.
  assert loop.cycle_cost(0.5, 1.0, 0, 2.0)["steps_per_second"] == 0.0
  assert loop.cycle_cost(0.5, 1.0, 10, 0.0)["steps_per_second"] == 0.0


def test_rows_record_each_cycles_cost():
  learner = loop.ActiveLearner(tiny_config("entropy"), log=quiet)
  rows = learner.run()
  for key in TIMING_FIELDS:
    assert all(isinstance(r[key], float) and r[key] >= 0.0 for r in rows), key
  # 2 epochs of ceil(labeled / 16) steps at 20, 30, 40 labels.
  assert learner.trainer.steps_run == 2 * (2 + 2 + 3)
  assert all(r["steps_per_second"] > 0.0 for r in rows)
  # The run's train step is traced in cycle 0 (a new Trainer's jit), and compiling is a part
  # of the cycle's train, eval and query seconds, not added to them (3 roundings of 1 ms).
  assert rows[0]["compile_seconds"] > 0.0
  for r in rows:
    assert r["compile_seconds"] <= (r["train_seconds"] + r["eval_seconds"]
                                    + r["query_seconds"] + 0.003)
    assert r["eval_seconds"] > 0.0
  # Cycle 1 has cycle 0's shapes (2 steps of 16): nothing new to trace.
  assert rows[1]["compile_seconds"] < rows[0]["compile_seconds"]


def _row(method, seed, cycle, **kw):
  r = {"method": method, "seed": seed, "cycle": cycle, "num_labeled": 20 + 10 * cycle,
       "train_seconds": 2.0, "query_seconds": 1.0, "score_seconds": 0.5,
       "select_seconds": 0.25, "eval_seconds": 1.0, "compile_seconds": 2.0,
       "steps_per_second": 100.0}
  r.update(kw)
  return r


def test_cost_section_tabulates_each_member():
  runs = [[_row("a", 0, 0, compile_seconds=3.0), _row("a", 0, 1, compile_seconds=1.0)],
          [_row("a", 1, 0, compile_seconds=3.0, steps_per_second=50.0),
           _row("a", 1, 1, compile_seconds=1.0, steps_per_second=50.0)],
          # Rows written before the cost fields existed.
          [{k: v for k, v in _row("old", 0, 0).items()
            if k not in ("eval_seconds", "compile_seconds", "steps_per_second")}]]
  lines = report.cost_section(runs)
  header = next(l for l in lines if l.startswith("| member"))
  cells = lambda l: [c.strip() for c in l.strip("|").split("|")]
  assert cells(header) == ["member", "seeds", "cycles", "train s", "eval s", "score s",
                           "select s", "compile s", "cycle s", "first cycle s", "compiling",
                           "steps/s"]
  a = dict(zip(cells(header), cells(next(l for l in lines if l.startswith("| a |")))))
  # Cycle seconds: train 2 + eval 1 + query 1 = 4; compile (3 + 1) / 2 = 2 of them: 50%.
  assert a == {"member": "a", "seeds": "2", "cycles": "4", "train s": "2.00", "eval s": "1.00",
               "score s": "0.50", "select s": "0.25", "compile s": "2.00", "cycle s": "4.00",
               "first cycle s": "4.00", "compiling": "50%", "steps/s": "75.0"}
  old = dict(zip(cells(header), cells(next(l for l in lines if l.startswith("| old |")))))
  assert old["compile s"] == old["eval s"] == old["compiling"] == old["steps/s"] == "–"
  assert old["cycle s"] == "3.00"  # train + query


def test_cache_dir_flag_values(monkeypatch, tmp_path):
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
  monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
  assert costs.resolve_cache_dir("auto") == str(tmp_path / "xdg" / "al_jax" / "jax_cache")
  monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "env"))
  assert costs.resolve_cache_dir("auto") == str(tmp_path / "env")
  monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", "")  # JAX reads an empty one as no cache
  assert costs.resolve_cache_dir("auto") is None
  assert costs.resolve_cache_dir("off") is None
  assert costs.resolve_cache_dir(str(tmp_path / "d")) == str(tmp_path / "d")


def test_a_cache_dir_that_cannot_be_created_is_one_line(tmp_path):
  (tmp_path / "file").write_text("")
  with pytest.raises(ALError, match="compilation cache .*cannot create it.*--compilation_cache"):
    costs.use_persistent_cache(str(tmp_path / "file" / "cache"))


def test_main_writes_and_reuses_the_compilation_cache(tmp_path):
  """--compilation_cache=DIR fills DIR; a second run (another process, a new workdir) adds
  nothing: every program it compiles was loaded from DIR."""
  cache = tmp_path / "cache"
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("JAX_COMPILATION_CACHE_DIR", None)

  def run(name):
    r = subprocess.run([sys.executable, "-m", "experiments.main", "--method=random",
                        "--dataset=digits", "--cycles=1", "--initial=20", "--epochs=1",
                        "--set=train.batch_size=16", "--set=eval.chunk_size=256",
                        "--progress=off", f"--compilation_cache={cache}",
                        f"--workdir={tmp_path / name}"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return sorted(os.listdir(cache))

  first = run("a")
  assert first  # every program, however small (costs.MIN_CACHED_COMPILE_SECONDS)
  assert run("b") == first
