"""Every `experiments/*.py` program runs to the end with tiny settings.

Each test runs the command a user types (`python -m experiments.X ...` from the repository
root, a subprocess) and checks a line or a file that only a finished run produces, not just
the exit status. Sizes are the smallest that still exercise the program's whole path.
"""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# One cycle of one epoch trains at most a handful of steps.
# tests/conftest.py's tiny_config settings, so the study's compiled steps, evaluation and
# scoring are the programs the in-process tiny runs already built.
TINY_SET = ["--set=train.batch_size=16", "--set=train.unlabeled_batch_size=16",
            "--set=eval.chunk_size=128", "--set=train.min_steps_per_epoch=1",
            "--set=model.kwargs.widths=(8, 16)", "--set=model.kwargs.hidden=32"]


def _run(module, *args, timeout=300, expect=0):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  r = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env,
                     capture_output=True, text=True, timeout=timeout)
  assert r.returncode == expect, (f"{module} exited {r.returncode}\nstdout:\n{r.stdout[-3000:]}"
                                  f"\nstderr:\n{r.stderr[-3000:]}")
  return r


def _rows(path):
  with open(path) as f:
    return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
  """A two-method, two-cycle study on digits (experiments.main), shared by report and floors."""
  wd = str(tmp_path_factory.mktemp("entry") / "study")
  r = _run("experiments.main", "--method=random,entropy", "--dataset=digits", "--seeds=0",
           "--cycles=2", "--initial=20", "--budget=10", "--epochs=1", "--progress=off",
           f"--workdir={wd}", *TINY_SET)
  return wd, r


def test_main_runs_a_study_and_writes_each_member(study):
  wd, r = study
  for method in ("random", "entropy"):
    assert f"{method} seed 0: 2 cycles, 30 labels" in r.stdout
    rows = _rows(os.path.join(wd, method, "seed_0", "results.jsonl"))
    assert [x["num_labeled"] for x in rows] == [20, 30]
    assert all(0.0 <= x["test_accuracy"] <= 1.0 for x in rows)
  assert "experiments.report" in r.stdout  # the next command is printed


def test_report_writes_tables_and_plots(study):
  wd, _ = study
  _run("experiments.report", f"--workdir={wd}")
  text = open(os.path.join(wd, "report.md")).read()
  assert "entropy" in text and "random" in text
  # Each member's seconds per cycle, with the share spent compiling.
  assert "## Cost per cycle" in text and "| random | 1 | 2 |" in text
  for name in ("accuracy_vs_labels.png", "results.csv", "summary.csv"):
    assert os.path.getsize(os.path.join(wd, name)) > 0, name
  assert len(open(os.path.join(wd, "results.csv")).read().splitlines()) == 1 + 4


def test_floors_on_labels_and_on_a_study(study):
  r = _run("experiments.floors", "--dataset=digits", "--labels=40", "--seeds=0")
  assert "digits     40 labels: linear probe" in r.stdout
  wd, _ = study
  r = _run("experiments.floors", f"--workdir={wd}")
  # One margin line per finished cycle's pool: the probe on the model's own labels.
  assert "entropy" in r.stdout and "random" in r.stdout


# Every registered section, even under --quick, compiles full-size models (minutes on two
# cores); the entry's own path (sections, table, JSON) runs here on a section of the same
# shape, and the ntk section's worker entry on a few samples.
_BENCH = """
import sys
import jax.numpy as jnp
from experiments import benchmark, cli
from experiments.benchmarks import section
from experiments.benchmarks.timing import time_fn

@section("smoke")
def smoke(flags):
  t = time_fn(lambda x: jnp.tanh(x) @ x, jnp.ones((64, 64)), repeats=2)
  return [{"quick": bool(flags.quick), "n": 64, **t}]

sys.argv = ["benchmark", "--quick", "--sections=smoke", "--json=" + sys.argv[1]]
cli.run(benchmark.main)
"""


def test_benchmark_entry_writes_its_table_and_json(tmp_path):
  out = str(tmp_path / "bench.json")
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  r = subprocess.run([sys.executable, "-c", _BENCH, out], cwd=ROOT, env=env,
                     capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-3000:]
  assert "## smoke" in r.stdout and "first_s" in r.stdout
  rows = json.load(open(out))["sections"]["smoke"]
  assert rows[0]["quick"] is True and rows[0]["best_s"] > 0
  # The ntk section's per-method worker (`experiments.benchmarks.ntk METHOD N OUT`).
  w = str(tmp_path / "structured")
  _run("experiments.benchmarks.ntk", "structured", "4", w)
  k = np.load(w + ".npy")
  assert k.shape[0] == k.shape[1] and np.all(np.isfinite(k))
  assert json.load(open(w + ".json"))["params"] > 0


def test_reproduce_decides_a_one_claim_ledger(tmp_path):
  wd = str(tmp_path / "ledger")
  r = _run("experiments.reproduce", "--claims=tod_cod_spearman", "--dataset=synthetic",
           "--seeds=0", f"--workdir={wd}", "--set=al.initial=20", "--set=al.budget=10",
           "--set=al.cycles=2", "--set=train.epochs=1", "--set=train.batch_size=16",
           "--set=train.unlabeled_batch_size=16", "--set=eval.chunk_size=128")
  text = open(os.path.join(wd, "REPRODUCTION.md")).read()
  assert "| tod_cod_spearman |" in text
  # One seed gives no interval: the claim is not measured, and says why.
  assert "not measured: 1 seed(s); a verdict needs ≥ 2" in text
  assert os.path.getsize(os.path.join(wd, "claims", "tod_cod_spearman.png")) > 0
  assert "## Cost per cycle" in text and "compiling" in text
  assert "REPRODUCTION.md" in r.stdout


def test_aral_claim_prints_the_comparison():
  r = _run("experiments.aral_claim", "--dataset=digits", "--labels_per_class=2", "--seeds=0",
           "--set=train.epochs=1", "--set=train.min_steps_per_epoch=2",
           "--set=train.batch_size=16", "--set=train.unlabeled_batch_size=16",
           "--set=eval.chunk_size=512")
  assert "seed 0 ARAL" in r.stdout and "seed 0 labels only" in r.stdout
  assert "ARAL better on" in r.stdout and "/1 seeds" in r.stdout


def test_crc_pseudo_al_runs_every_cycle(tmp_path):
  wd = str(tmp_path / "pseudo")
  r = _run("experiments.crc_pseudo_al", "--dataset=digits", "--cycles=2", "--epochs=1",
           f"--workdir={wd}")
  rows = _rows(os.path.join(wd, "results.jsonl"))
  # R0 = 2 images per class, then one query of R·C = 10 images, class-balanced.
  assert [x["num_labeled"] for x in rows] == [20, 30]
  assert rows[0]["num_selected"] == 10
  assert "30 labels (3 per class): test accuracy" in r.stdout
  y = np.load(os.path.join(wd, "pools", "cycle_1.npy"))
  assert len(y) == 30


def test_ntk_crosscheck_saves_the_main_environment_kernels(tmp_path):
  # The main-environment half of tests/ntk_crosscheck/run.sh (the other half needs a
  # pinned environment installed from a package index).
  out = str(tmp_path / "ntk.npz")
  _run("experiments.ntk_crosscheck", out)
  saved = np.load(out, allow_pickle=False)
  kernels = [k for k in saved.files if "ntk" in k.lower()]
  assert kernels, saved.files
  for k in kernels:
    assert np.all(np.isfinite(saved[k])) and saved[k].size > 0


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is not None,
                    reason="TensorFlow is installed: tests/test_prepare_data.py runs the "
                    "offline preparation itself")
def test_prepare_data_without_tensorflow_says_how_to_install_it(tmp_path):
  r = _run("experiments.prepare_data", "--dataset=mnist", f"--data_dir={tmp_path / 'tfds'}",
           expect=2)
  lines = r.stderr.strip().splitlines()
  assert len(lines) == 1 and "needs TensorFlow" in lines[0]
