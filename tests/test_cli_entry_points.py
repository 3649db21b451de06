"""The harnesses beside experiments.main under the same bad-input sweep: one line, exit 2.

experiments.aral_claim and experiments.crc_pseudo_al get main's cases (tests/test_cli.py):
unknown names, out-of-range numbers, a file where a directory is expected, an unwritable
path, stray arguments. aral_claim writes no files (it prints its table), so its path case is
--data_dir. Every case fails before any training.
"""

import subprocess
import sys

import pytest

from tests.test_cli import ROOT, _run

_CASES = [
    # (module, args, the one line on stderr); {file} is an existing regular file.
    ("experiments.aral_claim", ["--dataset=nope"],
     "error: unknown dataset 'nope'; valid: cifar10, cifar100, digits, fashion_mnist, mnist, "
     "svhn, synthetic"),
    ("experiments.aral_claim", ["--labels_per_class=0"],
     "error: flag --labels_per_class=0: 0 is not a positive integer"),
    ("experiments.aral_claim", ["--labels_per_class=-3"],
     "error: flag --labels_per_class=-3: -3 is not a positive integer"),
    ("experiments.aral_claim", ["--labels_per_class=99999"],
     "error: initial pool 999990 is larger than the 1297-point pool"),
    ("experiments.aral_claim", ["--seeds=0,-1"],
     "error: --seeds must be non-negative integers, got -1"),
    ("experiments.aral_claim", ["--seeds=a"],
     "error: --seeds must be non-negative integers, got 'a'"),
    ("experiments.aral_claim", ["--seeds=1,1"], "error: --seeds lists a seed twice: 1,1"),
    ("experiments.aral_claim", ["--seeds="], "error: --seeds is empty"),
    ("experiments.aral_claim", ["--tune", "--tune_seeds="], "error: --tune_seeds is empty"),
    ("experiments.aral_claim", ["--tune", "--tune_seeds=-1"],
     "error: --tune_seeds must be non-negative integers, got -1"),
    ("experiments.aral_claim", ["--val_size=0"],
     "error: flag --val_size=0: 0 is not a positive integer"),
    ("experiments.aral_claim", ["--tune", "--val_size=5000"],
     "error: --val_size=5000 leaves no training images of the 1297 in digits"),
    ("experiments.aral_claim", ["--baseline_optim=x"],
     "error: flag --baseline_optim=x: value should be one of <own|aral|both>"),
    ("experiments.aral_claim", ["--set", "train.nope=1"],
     "error: unknown config key 'train.nope'"),
    ("experiments.aral_claim", ["--set", "optim.lr"],
     "error: --set expects key=value, got 'optim.lr'"),
    ("experiments.aral_claim", ["--data_dir={file}"],
     "error: --data_dir={file} exists and is not a directory"),
    ("experiments.aral_claim", ["stray"], "error: unexpected arguments: stray"),
    ("experiments.crc_pseudo_al", ["--method=nope"], "error: unknown method 'nope'; valid: "),
    ("experiments.crc_pseudo_al", ["--method=entropy"],
     "error: --method=entropy: pseudo-AL needs a method whose acquisition is crc (crc, "
     "crc_fixmatch), not 'entropy'"),
    ("experiments.crc_pseudo_al", ["--dataset=nope"], "error: unknown dataset 'nope'; valid: "),
    ("experiments.crc_pseudo_al", ["--preset=gpu"],
     "error: unknown preset 'gpu'; valid: cpu, paper"),
    ("experiments.crc_pseudo_al", ["--per_class=0"],
     "error: flag --per_class=0: 0 is not a positive integer"),
    ("experiments.crc_pseudo_al", ["--initial_per_class=-1"],
     "error: flag --initial_per_class=-1: -1 is not a positive integer"),
    ("experiments.crc_pseudo_al", ["--cycles=0"],
     "error: flag --cycles=0: 0 is not a positive integer"),
    ("experiments.crc_pseudo_al", ["--epochs=0"],
     "error: flag --epochs=0: 0 is not a positive integer"),
    ("experiments.crc_pseudo_al", ["--seed=-1"],
     "error: flag --seed=-1: -1 is not a non-negative integer"),
    ("experiments.crc_pseudo_al", ["--cycles=x"], "error: flag --cycles=x: "),
    ("experiments.crc_pseudo_al", ["--per_class=999", "--workdir=W/run"],
     "error: initial 20 + budget 9990 × 2 cycles = 20000 labels, more than the 1297-point "
     "pool"),
    ("experiments.crc_pseudo_al", ["--workdir={file}"],
     "error: --workdir={file} exists and is not a directory"),
    ("experiments.crc_pseudo_al", ["--workdir={file}/sub"],
     "error: --workdir={file}/sub: {file} is not a directory"),
    ("experiments.crc_pseudo_al", ["--workdir=/proc/al_jax_cannot_write_here"],
     "error: --workdir=/proc/al_jax_cannot_write_here: cannot create it in /proc (ENOENT: No "
     "such file or directory)"),
    ("experiments.main", ["--workdir=/proc/al_jax_cannot_write_here"],
     "error: --workdir=/proc/al_jax_cannot_write_here: cannot create it in /proc (ENOENT: No "
     "such file or directory)"),
    ("experiments.crc_pseudo_al", ["stray"], "error: unexpected arguments: stray"),
]


@pytest.fixture(scope="module")
def a_file(tmp_path_factory):
  path = tmp_path_factory.mktemp("paths") / "regular_file"
  path.write_text("not a directory\n")
  return str(path)


@pytest.mark.parametrize("module,args,msg", _CASES,
                         ids=[f"{m.split('.')[-1]}:{' '.join(a)}" for m, a, _ in _CASES])
def test_entry_point_bad_input_is_one_line_on_stderr_and_exit_2(module, args, msg, a_file,
                                                                  tmp_path):
  fill = lambda s: s.replace("{file}", a_file).replace("=W", f"={tmp_path}")
  r = _run(module, *map(fill, args))
  err = r.stderr.strip().splitlines()
  assert r.returncode == 2, r.stderr[-2000:]
  assert len(err) == 1 and err[0].startswith(fill(msg)), r.stderr[-2000:]
  assert "Traceback" not in r.stdout + r.stderr


_ENTRY_POINTS = ["main", "aral_claim", "crc_pseudo_al", "reproduce", "prepare_data",
                 "report", "floors", "benchmark", "mutants"]


@pytest.mark.parametrize("name", _ENTRY_POINTS)
def test_a_flag_error_is_reported_before_jax_is_imported(name):
  # A mistyped flag should cost a user well under a second: absl rejects it before `main`, so
  # nothing the module imports at its top may pull in JAX, Flax or TensorFlow.
  r = subprocess.run([sys.executable, "-X", "importtime", "-m", f"experiments.{name}",
                      "--no_such_flag=1"], cwd=ROOT, capture_output=True, text=True,
                     timeout=120)
  assert r.returncode != 0
  assert "no_such_flag" in r.stderr.splitlines()[-1], r.stderr[-2000:]
  heavy = [line for line in r.stderr.splitlines()
           if line.startswith("import time:") and line.split("|")[-1].strip() in
           ("jax", "flax", "tensorflow", "optax", "orbax")]
  assert not heavy, heavy
