"""The command-line tools: bad input is one line on stderr and exit 2; --list names everything.

Every case here fails before JAX starts (flag parsing and path checks), so each subprocess
costs about a second.
"""

import os
import subprocess
import sys

import pytest

from al_jax import ALError
from al_jax.acquisition import ACQUISITIONS
from al_jax.data import DATASETS
from al_jax.methods import METHODS
from al_jax.models import MODELS
from al_jax.objectives import OBJECTIVES
from experiments import cli
from experiments import study

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(module, *args, timeout=120):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def a_file(tmp_path_factory):
  path = tmp_path_factory.mktemp("paths") / "regular_file"
  path.write_text("not a directory\n")
  return str(path)


_CASES = [
    # (module, args, expected substring); {file} is an existing regular file.
    ("experiments.main", ["--seed=-1"], "--seed=-1: -1 is not a non-negative integer"),
    ("experiments.main", ["--workdir={file}"], "exists and is not a directory"),
    ("experiments.main", ["--workdir={file}/sub"], "is not a directory"),
    ("experiments.main", ["--data_dir={file}"], "--data_dir={file} exists and is not a directory"),
    ("experiments.main", ["--seed=x"], "--seed=x"),
    ("experiments.main", ["--seeds=0,-2"], "--seeds must be non-negative integers, got -2"),
    ("experiments.main", ["--seeds=0,0"], "lists a seed twice"),
    ("experiments.main", ["--cycles=0"], "--cycles=0: 0 is not a positive integer"),
    ("experiments.main", ["--budget=-5"], "--budget=-5"),
    ("experiments.main", ["--epochs=1.5"], "--epochs=1.5"),
    ("experiments.main", ["--workers=0"], "--workers=0"),
    ("experiments.main", ["--shard=2/2", "--workdir=W"], "--shard must be K/N"),
    ("experiments.main", ["--shard=a"], "--shard must be K/N"),
    ("experiments.main", ["--method=random,entropy", "--workers=2"], "need a --workdir"),
    ("experiments.main", ["--ntk_backend=jax"], "--ntk_backend=jax"),
    ("experiments.main", ["--progress=fancy"], "--progress=fancy"),
    ("experiments.main", ["--set", "seed=3"], "--set seed=... is not a setting; use --seed or "
                                             "--seeds"),
    ("experiments.main", ["--seeds="], "--seeds is empty"),
    ("experiments.main", ["--method="], "--method is empty"),
    ("experiments.main", ["--method=entropy,"], "--method=entropy, has an empty entry"),
    ("experiments.main", ["--method=random,entropy,random"], "--method lists random twice"),
    ("experiments.main", ["--cycles=2", "--set", "al.cycles=3"],
     "--set al.cycles=... and --cycles set the same thing; give one"),
    ("experiments.main", ["--resume"], "--resume needs the --workdir"),
    ("experiments.main", ["--set", "al.initial.x=5"],
     "unknown config key 'al.initial.x': al.initial is a setting, not a section"),
    ("experiments.main", ["--set", "model.kwargs=None"], "model.kwargs is a section"),
    ("experiments.main", ["--set", "eval.chunk_size=0"],
     "eval.chunk_size=0 is out of range: must be an integer ≥ 1"),
    ("experiments.main", ["stray"], "unexpected arguments: stray"),
    ("experiments.report", ["--workdir={file}"], "--workdir must be an existing directory"),
    ("experiments.report", ["--workdir=W", "--target=1.5"], "--target=1.5"),
    ("experiments.benchmark", ["--json=W"], "is a directory, expected a file name"),
    ("experiments.benchmark", ["--json=W/missing/out.json"], "does not exist"),
    ("experiments.benchmark", ["--profile_dir={file}"], "exists and is not a directory"),
    ("experiments.benchmark", ["--sections=nope"], "unknown sections"),
    ("experiments.benchmark", ["--sections="], "--sections is empty"),
    ("experiments.reproduce", ["--workdir={file}"], "exists and is not a directory"),
    ("experiments.reproduce", ["--workdir=W/l", "--seeds=1,-1"], "non-negative integers"),
    ("experiments.reproduce", ["--workdir=W/l", "--claims=nope"], "unknown claim(s) nope"),
    ("experiments.reproduce", ["--workdir=W/l", "--claims=all,tod_cod_spearman"],
     "--claims=all names every claim; give it alone"),
    ("experiments.reproduce", ["--workdir=W/l", "--claims=tod_cod_spearman,tod_cod_spearman"],
     "--claims lists tod_cod_spearman twice"),
    ("experiments.reproduce", ["--workdir=W/l", "--claims="], "--claims is empty"),
    ("experiments.reproduce", ["--workdir=W/l", "--seeds="], "--seeds is empty"),
    ("experiments.reproduce", ["--workdir=W/l", "--workers=0"], "--workers=0"),
    ("experiments.reproduce", [], "--workdir is required"),
    ("experiments.floors", ["--labels=0"], "--labels must be positive integers"),
    ("experiments.floors", ["--dataset=digits", "--labels=99999"], "more than the"),
    ("experiments.prepare_data", [], "--dataset is required"),
    ("experiments.prepare_data", ["--dataset=imagenet"], "--dataset=imagenet"),
    ("experiments.prepare_data", ["--dataset=svhn", "--data_dir={file}"],
     "exists and is not a directory"),
    ("experiments.prepare_data", ["--dataset=svhn", "--manual_dir={file}"],
     "--manual_dir must be an existing directory"),
    ("experiments.prepare_data", ["--dataset=cifar10", "--from_debian"],
     "--from_debian applies to fashion_mnist only"),
]


@pytest.mark.parametrize("module,args,msg", _CASES,
                         ids=[f"{m.split('.')[-1]}:{' '.join(a) or 'noargs'}"
                              for m, a, _ in _CASES])
def test_bad_input_is_one_line_on_stderr_and_exit_2(module, args, msg, a_file, tmp_path):
  fill = lambda s: s.replace("{file}", a_file).replace("=W", f"={tmp_path}")
  r = _run(module, *map(fill, args))
  err = r.stderr.strip().splitlines()
  assert r.returncode == 2, r.stderr[-2000:]
  assert len(err) == 1 and err[0].startswith("error: ") and fill(msg) in err[0], r.stderr[-2000:]
  assert "Traceback" not in r.stdout + r.stderr


def test_path_checks(tmp_path, a_file):
  cli.check_dir_or_new("--workdir", str(tmp_path / "new" / "deeper"))  # creatable
  cli.check_dir_or_new("--workdir", str(tmp_path))                    # existing directory
  with pytest.raises(ALError, match="exists and is not a directory"):
    cli.check_dir_or_new("--workdir", a_file)
  with pytest.raises(ALError, match="is not a directory"):
    cli.check_dir_or_new("--workdir", a_file + "/x/y")
  with pytest.raises(ALError, match="does not exist"):
    cli.check_existing_dir("--manual_dir", str(tmp_path / "absent"))
  cli.check_new_file("--json", str(tmp_path / "out.json"))
  with pytest.raises(ALError, match="is a directory"):
    cli.check_new_file("--json", str(tmp_path))
  assert cli.parse_seeds(["3", "0"]) == [3, 0]
  with pytest.raises(ALError, match="non-negative"):
    cli.parse_seeds(["-1"])


def test_shard_parsing():
  assert study.parse_shard("0/4") == (0, 4) and study.parse_shard("3/4") == (3, 4)
  assert study.parse_shard(None) is None and study.parse_shard("") is None
  for bad in ("4/4", "-1/4", "1/0", "1", "a/b", "1/2/3"):
    with pytest.raises(ALError, match="K/N"):
      study.parse_shard(bad)


def test_list_names_every_component_one_line_each():
  r = _run("experiments.main", "--list")
  assert r.returncode == 0, r.stderr[-2000:]
  lines = r.stdout.splitlines()
  entries = {}
  for line in lines:
    if line.startswith("  "):
      name, rest = line.strip().split(None, 1)
      entries.setdefault(name, []).append(rest)
  for name, m in METHODS.items():
    # the pairing, then the description that names the paper
    assert f"{m.objective} × {m.acquisition}: {m.description}" in entries[name]
  for reg in (OBJECTIVES, ACQUISITIONS, MODELS, DATASETS):
    for name in reg.names():
      assert name in entries and all(e.strip() for e in entries[name]), name
  assert "crc_fixmatch" in entries and "tod_emaod" in entries
  assert any(l.startswith("presets (--preset): cpu, paper") for l in lines)


def test_a_tilde_in_a_path_flag_is_the_home_directory(tmp_path):
  """The shell leaves `~` alone after `--flag=`; the tools expand it (else `--data_dir=~/tfds`
  writes a folder named `~` in the current directory)."""
  env = dict(os.environ, JAX_PLATFORMS="cpu", HOME=str(tmp_path))
  r = subprocess.run([sys.executable, "-m", "experiments.report", "--workdir=~/absent"], cwd=ROOT,
                     env=env, capture_output=True, text=True, timeout=120)
  assert r.returncode == 2 and f"must be an existing directory, got '{tmp_path}/absent'" \
      in r.stderr, r.stderr[-2000:]


def test_help_points_at_list():
  r = _run("experiments.main", "--help")  # absl's --help exits 1 after printing
  assert "--list" in r.stdout and "entropy" in r.stdout
