"""Settings that cannot make sense are refused before any work, with one line naming the key,
the value and the valid range (experiments/configs/schema.py)."""

import json
import os
import subprocess
import sys

import pytest

from al_jax import ALError
from al_jax.acquisition import ACQUISITIONS
from al_jax.models import MODELS
from al_jax.objectives import OBJECTIVES
from experiments.configs import base, resolve, schema

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _numeric(v) -> bool:
  if isinstance(v, bool):
    return False
  if isinstance(v, (int, float)):
    return True
  return isinstance(v, (tuple, list)) and bool(v) and all(
      isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)


def _base_leaves():
  def walk(d, prefix=""):
    for k, v in d.items():
      if isinstance(v, dict):
        yield from walk(v, f"{prefix}{k}.")
      else:
        yield f"{prefix}{k}", v
  return dict(walk(base.get_config().to_dict()))


def test_every_numeric_setting_has_a_declared_range():
  missing = [k for k, v in _base_leaves().items()
             if (_numeric(v) or k == "optim.milestones") and k not in schema.BASE]
  for kind, reg in (("objective", OBJECTIVES), ("acquisition", ACQUISITIONS),
                    ("model", MODELS)):
    for name in reg.names():
      cls = schema._component_class(kind, name)
      rules = schema.declared(kind, name)
      fixed = MODELS.get(name).fixed if kind == "model" else {}
      missing += [f"{kind} {name}: {k}" for k, v in schema.component_settings(cls).items()
                  if _numeric(v) and k not in rules and k not in fixed]
  assert not missing, missing


def _cases():
  """(preset method, dataset, key, an out-of-range value) for every declaration."""
  for key, rule in sorted(schema.BASE.items()):
    yield "random", key, rule.invalid()
  methods = {"objective": {"aral": "aral", "critic": "crtcl", "fixmatch": "random_fixmatch",
                           "loss_pred": "ll4al", "mean_teacher": "random_mt",
                           "tod_ema": "tod", "vaal": "vaal"},
             "acquisition": {"bald": "bald", "crc": "crc", "egl": "egl",
                             "entropy_gradnorm": "ent_gradnorm", "pt4al": "pt4al",
                             "vaal": "vaal"}}
  for kind, section in (("objective", "objective_kwargs"), ("acquisition", "acquisition_kwargs")):
    table = schema.OBJECTIVES if kind == "objective" else schema.ACQUISITIONS
    for name, rules in sorted(table.items()):
      for k, rule in sorted(rules.items()):
        yield methods[kind][name], f"{section}.{k}", rule.invalid()
  for name, rules in sorted(schema.MODELS.items()):
    for k, rule in sorted(rules.items()):
      if k not in MODELS.get(name).fixed:
        yield f"model:{name}", f"model.kwargs.{k}", rule.invalid()


CASES = list(_cases())


def test_the_table_covers_every_declaration():
  assert len(CASES) == len(schema.BASE) + sum(map(len, schema.OBJECTIVES.values())) + sum(
      map(len, schema.ACQUISITIONS.values())) + sum(
      len([k for k in r if k not in MODELS.get(n).fixed]) for n, r in schema.MODELS.items())


# Runs experiments.main's real command-line path (absl flags, config resolution and checks,
# `cli.fail`) once per case in one child process: each case's exit status and stderr.
_DRIVER = r"""
import contextlib, io, json, logging, sys
from absl import flags
from experiments import main as main_lib
out = []
for args in json.loads(sys.stdin.read()):
  flags.FLAGS.unparse_flags()
  flags.FLAGS(["main", "--progress=off", *args])
  err = io.StringIO()
  code = 0
  with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()) as so:
    try:
      main_lib.main(["main"])
    except SystemExit as e:
      code = e.code
  logging.getLogger("al_jax").handlers.clear()
  out.append([code, err.getvalue(), so.getvalue()])
print(json.dumps(out))
"""


def _args(method, key, value):
  args = [f"--set={key}={value!r}"]
  if method.startswith("model:"):
    return ["--method=random", f"--set=model.name={method.split(':')[1]}"] + args
  return [f"--method={method}"] + args


@pytest.fixture(scope="module")
def cli_results():
  cases = [_args(*c) for c in CASES]
  r = subprocess.run([sys.executable, "-c", _DRIVER], input=json.dumps(cases), cwd=ROOT,
                     capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]
  return dict(zip(map(tuple, cases), json.loads(r.stdout.strip().splitlines()[-1])))


@pytest.mark.parametrize("method,key,value", CASES, ids=[f"{k}={v!r}" for _, k, v in CASES])
def test_an_out_of_range_value_exits_2_with_one_line_naming_key_value_and_range(
    cli_results, method, key, value):
  code, err, out = cli_results[tuple(_args(method, key, value))]
  assert code == 2 and out == ""
  lines = err.strip().splitlines()
  assert len(lines) == 1, err
  if key == "seed":  # the command line takes seeds from --seed / --seeds only
    assert lines[0] == "error: --set seed=... is not a setting; use --seed or --seeds"
    with pytest.raises(ALError, match=f"seed={value!r} is out of range: must be"):
      resolve(method, "digits", "cpu", overrides=[(key, value)])
    return
  assert lines[0].startswith(f"error: {key}=") and "must be" in lines[0], lines[0]


def test_in_range_values_pass_and_checks_are_not_scattered():
  resolve("random", "digits", "cpu", overrides=[("optim.lr", 1e-4), ("eval.ece_bins", 1)])
  resolve("ll4al", "digits", "cpu", overrides=[("derive.detach_fraction", 1.0)])
  with pytest.raises(ALError, match="derive.detach_fraction=1.0 sets objective_kwargs.detach_"
                                    "epoch, which objective 'supervised' does not have"):
    resolve("random", "digits", "cpu", overrides=[("derive.detach_fraction", 1.0)])
  with pytest.raises(ALError, match="objective_kwargs.lam: objective 'supervised' has no such"):
    resolve("random", "digits", "cpu", overrides=[("objective_kwargs.lam", 0.1)])
  with pytest.raises(ALError, match="optim.milestones"):
    resolve("random", "digits", "cpu", overrides=[("optim.schedule", "step"),
                                                  ("optim.milestones", (50,))])
  with pytest.raises(ALError, match="samples dropout masks"):
    resolve("bald", "digits", "cpu", overrides=[("model.kwargs.dropout_rate", 0.0)])


@pytest.mark.parametrize("setting,expect", [
    ("optim.lr=-1", "optim.lr=-1.0 is out of range: must be a number > 0"),
    ("eval.ece_bins=0", "eval.ece_bins=0 is out of range: must be an integer ≥ 1"),
])
def test_the_command_line_exits_2_with_one_line(setting, expect):
  r = subprocess.run([sys.executable, "-m", "experiments.main", "--set", setting,
                      "--progress=off"], cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert r.returncode == 2
  assert r.stderr.strip() == f"error: {expect}"
  assert r.stdout == ""


# Names the pairing and the command line's own flags set, not `--set`; `model.name` is
# looked up in the model registry (an unknown name, None included, is one line there).
_NOT_SETTINGS = {"method", "objective", "acquisition", "dataset", "preset", "protocol",
                 "model.name"}


def test_every_bool_and_string_setting_has_a_rule():
  # None passes ml_collections' type check for any field and would read as False or as the
  # default path, so booleans and strings need rules as numbers do.
  missing = [k for k, v in _base_leaves().items()
             if isinstance(v, (bool, str)) and k not in _NOT_SETTINGS and k not in schema.BASE]
  assert not missing, missing


@pytest.mark.parametrize("key,value,expect", [
    ("al.initial.x", 5, "unknown config key 'al.initial.x': al.initial is a setting, not a "
                        "section"),
    ("model.kwargs", None, "model.kwargs=None: model.kwargs is a section; set its keys"),
    ("objective_kwargs", None, "objective_kwargs=None: objective_kwargs is a section"),
    ("acquisition_kwargs", 3, "acquisition_kwargs=3: acquisition_kwargs is a section"),
    ("al", None, "al=None: al is a section"),
    ("optim", {"lrr": 1.0}, "unknown config key 'optim.lrr'"),
    ("optim", {}, "optim={}: an empty dict sets nothing"),
    ("train.augment", None, "train.augment=None is out of range: must be one of True, False"),
    ("data_dir", None, "data_dir=None is out of range: must be a string"),
    ("al.budget", "abc", "al.budget='abc' has the wrong type: must be an int (like 40)"),
    ("train.warm_start", "yes", "train.warm_start='yes' has the wrong type: must be a bool"),
])
def test_malformed_settings_are_one_line_errors(key, value, expect):
  with pytest.raises(ALError) as e:
    resolve("random", "digits", "cpu", overrides=[(key, value)])
  assert str(e.value).startswith(expect), str(e.value)


def test_a_dict_for_a_section_is_its_keys_set_one_by_one():
  def same(a, b):
    ra = resolve("random", "digits", "cpu", overrides=a)
    rb = resolve("random", "digits", "cpu", overrides=b)
    assert ra.config.to_dict() == rb.config.to_dict()
    assert ra.describe() == rb.describe()
  same([("optim", {"lr": 0.01, "b1": 0.5})], [("optim.lr", 0.01), ("optim.b1", 0.5)])
  # A model swapped through a dict drops the previous model's settings as `model.name` does.
  same([("model", {"name": "resnet18", "kwargs": {"width_multiplier": 0.5}})],
       [("model.name", "resnet18"), ("model.kwargs.width_multiplier", 0.5)])
  # A component setting whose value is a dict stays one value.
  r = resolve("pt4al", "digits", "cpu",
              overrides=[("acquisition_kwargs.optim", {"name": "adam", "lr": 1e-3})])
  assert r.config.acquisition_kwargs.optim.to_dict() == {"name": "adam", "lr": 1e-3}


def test_apply_overrides_merges_a_dict_into_a_section():
  c = base.get_config()
  from experiments.configs import apply_overrides
  apply_overrides(c, {"optim": {"lr": 0.5}})
  assert c.optim.lr == 0.5 and c.optim.name == "adam" and c.optim.b2 == 0.999
