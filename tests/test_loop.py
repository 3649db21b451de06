"""End-to-end AL loop: files, determinism, resume after a kill, bad input."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from al_jax import ALError, loop
from al_jax.objectives import base as obj_base
from tests.conftest import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
quiet = lambda s: None


def _pools(wd):
  d = os.path.join(wd, "pools")
  return {f: np.load(os.path.join(d, f)) for f in sorted(os.listdir(d)) if f.endswith(".npy")}


def test_run_writes_workdir_files(tmp_path):
  wd = str(tmp_path / "w")
  rows = loop.run(tiny_config("entropy"), wd, log=quiet)
  assert [r["cycle"] for r in rows] == [0, 1, 2]
  assert [r["num_labeled"] for r in rows] == [20, 30, 40]
  with open(os.path.join(wd, "results.jsonl")) as f:
    disk = [json.loads(l) for l in f]
  assert disk == rows
  for key in ("method", "objective", "acquisition", "dataset", "seed", "test_accuracy",
              "test_ece", "test_nll", "train_seconds", "query_seconds"):
    assert key in disk[0]
  assert all(np.isfinite(r["test_accuracy"]) for r in rows)
  pools = _pools(wd)
  assert [len(pools[f"cycle_{k}.npy"]) for k in range(3)] == [20, 30, 40]
  assert set(pools["cycle_0.npy"]) < set(pools["cycle_1.npy"]) < set(pools["cycle_2.npy"])
  with open(os.path.join(wd, "config.json")) as f:
    cfg = json.load(f)
  assert cfg["config"]["acquisition"] == "entropy" and "jax_version" in cfg["environment"]
  assert os.listdir(os.path.join(wd, "checkpoints"))


def test_same_seed_same_selections_and_other_seed_differs():
  a = loop.ActiveLearner(tiny_config("entropy"), log=quiet)
  b = loop.ActiveLearner(tiny_config("entropy"), log=quiet)
  c = loop.ActiveLearner(tiny_config("entropy", seed=1), log=quiet)
  sel = []
  for learner in (a, b, c):
    pool = learner.initial_pool()
    state = learner.train(0, pool)
    sel.append(learner.select(0, state, pool).indices)
  np.testing.assert_array_equal(sel[0], sel[1])
  assert not np.array_equal(sel[0], sel[2])


def test_resume_after_crash_equals_uninterrupted(tmp_path, monkeypatch):
  full = loop.run(tiny_config("entropy", **{"al.cycles": 4}), str(tmp_path / "full"), log=quiet)

  wd = str(tmp_path / "killed")

  def crash(msg):
    if msg.startswith("cycle 3/4 | labeled"):
      raise KeyboardInterrupt  # dies in the middle of the third cycle's training
  cfg = tiny_config("entropy", **{"al.cycles": 4, "log_every": 1})
  with pytest.raises(KeyboardInterrupt):
    loop.run(cfg, wd, log=crash)
  assert len(loop.results_lib.Workdir(wd).read_results()) == 2
  resumed = loop.run(cfg, wd, resume=True, log=quiet)
  acc = lambda rows: [r["test_accuracy"] for r in rows]
  assert acc(resumed) == acc(full)
  p_full, p_res = _pools(str(tmp_path / "full")), _pools(wd)
  assert p_full.keys() == p_res.keys()
  for k in p_full:
    np.testing.assert_array_equal(p_full[k], p_res[k])
  # Resuming a finished run does nothing and keeps its results.
  again = loop.run(cfg, wd, resume=True, log=quiet)
  assert acc(again) == acc(full)


def test_resume_with_warm_start_matches(tmp_path):
  cfg = tiny_config("random", **{"train.warm_start": True, "al.cycles": 3, "log_every": 1})
  full = loop.run(cfg, str(tmp_path / "full"), log=quiet)
  wd = str(tmp_path / "k")

  def crash(msg):
    if msg.startswith("cycle 3/3 | labeled"):
      raise KeyboardInterrupt
  with pytest.raises(KeyboardInterrupt):
    loop.run(cfg, wd, log=crash)
  learner = loop.ActiveLearner(cfg, wd, log=quiet)
  resumed = learner.run(resume=True)
  assert [r["test_accuracy"] for r in resumed] == [r["test_accuracy"] for r in full]
  # The restored (warm-start) state is placed as a fresh run's state is (orbax restores it
  # committed to the device): the resumed cycle's train step compiles once, not once per
  # placement pattern (jit keys executables on committed vs uncommitted inputs).
  assert learner.trainer.step._cache_size() == 1  # pylint: disable=protected-access


@pytest.mark.parametrize("overrides,msg", [
    ({"al.cycles": 0}, "cycles must be positive"),
    ({"train.epochs": -1}, "epochs must be positive"),
    ({"al.budget": 0}, "budget must be positive"),
    ({"al.initial": 5000}, "larger than"),
    ({"al.budget": 1000}, "more than"),
])
def test_bad_schedules_are_refused(overrides, msg):
  with pytest.raises(ALError, match=msg):
    loop.ActiveLearner(tiny_config("random", **overrides), log=quiet)


@pytest.mark.parametrize("kind,name", [("objective", "nope"), ("acquisition", "nope"),
                                       ("dataset", "nope"), ("model.name", "nope")])
def test_unknown_component_lists_valid_names(kind, name):
  with pytest.raises(ALError, match="valid:"):
    loop.ActiveLearner(tiny_config("random", **{kind: name}), log=quiet)


def test_workdir_guards(tmp_path):
  wd = str(tmp_path / "w")
  loop.run(tiny_config("random", **{"al.cycles": 1}), wd, log=quiet)
  with pytest.raises(ALError, match="already holds an experiment"):
    loop.run(tiny_config("random", **{"al.cycles": 1}), wd, log=quiet)
  with pytest.raises(ALError, match="different experiment"):
    loop.run(tiny_config("entropy", **{"al.cycles": 1}), wd, resume=True, log=quiet)
  with pytest.raises(ALError, match="holds no experiment"):
    loop.run(tiny_config("random"), str(tmp_path / "empty"), resume=True, log=quiet)


def test_corrupt_checkpoints_are_a_clear_error(tmp_path):
  """Every checkpoint damaged: one line (a damaged newest one alone falls back to the one
  before: tests/test_workdir_safety.py)."""
  wd = str(tmp_path / "w")
  cfg = tiny_config("random", **{"al.cycles": 2})
  loop.run(cfg, wd, log=quiet)
  for ck in ("0", "1"):
    for dirpath, _, files in os.walk(os.path.join(wd, "checkpoints", ck)):
      for f in files:
        with open(os.path.join(dirpath, f), "wb") as fh:
          fh.write(b"garbage")
  with pytest.raises(ALError, match="no checkpoint in .* restores") as e:
    loop.run(cfg, wd, resume=True, log=quiet)
  assert "\n" not in str(e.value)


def test_nan_loss_stops_and_keeps_finished_cycles(tmp_path, monkeypatch):
  calls = {"n": 0}
  real = obj_base.optim.lr_at_epoch

  def lr_nan_after_first_cycle(cfg, epoch, total):
    calls["n"] += 1
    return real(cfg, epoch, total) if calls["n"] <= total else float("nan")
  monkeypatch.setattr(obj_base.optim, "lr_at_epoch", lr_nan_after_first_cycle)
  wd = str(tmp_path / "w")
  with pytest.raises(ALError, match="non-finite loss at cycle 2/3 epoch 1; "):
    loop.run(tiny_config("random"), wd, log=quiet)
  work = loop.results_lib.Workdir(wd)
  assert [r["cycle"] for r in work.read_results()] == [0]
  assert os.path.exists(os.path.join(wd, "pools", "cycle_0.npy"))
  assert work.latest_checkpoint() == 0


def test_epoch_batches_cover_every_point_once_with_masked_padding():
  pos, mask = loop.epoch_batches(37, 16, 1, np.random.default_rng(0))
  assert pos.shape == mask.shape == (3, 16)
  real = pos.reshape(-1)[mask.reshape(-1) > 0]
  assert sorted(real.tolist()) == list(range(37))
  pos, mask = loop.epoch_batches(5, 16, 4, np.random.default_rng(0))
  assert pos.shape == (4, 16) and mask.all()


def _cli(*args, timeout=300):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", "experiments.main", *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("args,msg", [
    (["--method=nope"], "unknown method 'nope'; valid:"),
    (["--preset=gpu"], "unknown preset 'gpu'"),
    (["--acquisition=nope"], "unknown acquisition 'nope'; valid:"),
    (["--set", "train.nope=3"], "unknown config key"),
])
def test_cli_bad_input_is_one_line_and_nonzero(args, msg, tmp_path):
  r = _cli(*args, f"--workdir={tmp_path / 'w'}")
  assert r.returncode != 0
  err = r.stderr.strip().splitlines()
  assert len(err) == 1 and msg in err[0], r.stderr[-2000:]


def test_cli_sigkill_then_resume_matches(tmp_path):
  """The real thing: SIGKILL the CLI in the middle of cycle 2, rerun with --resume."""
  # Five steps per epoch (a run-time setting: the preset's compiled programs are unchanged)
  # keep the three runs short; the kill still lands in epoch 5 of 40.
  common = ["--method=entropy", "--dataset=digits", "--cycles=3", "--initial=20",
            "--budget=10", "--epochs=40", "--set", "log_every=1",
            "--set", "train.min_steps_per_epoch=5"]
  full = tmp_path / "full"
  assert _cli(*common, f"--workdir={full}").returncode == 0
  wd = tmp_path / "killed"
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
  proc = subprocess.Popen([sys.executable, "-m", "experiments.main", *common,
                           f"--workdir={wd}"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
  deadline = time.time() + 240
  for line in proc.stdout:
    if "cycle 2/3 | labeled 30 | epoch 5/" in line:
      proc.send_signal(signal.SIGKILL)
      break
    assert time.time() < deadline
  proc.wait()
  assert proc.returncode == -signal.SIGKILL
  r = _cli(*common, f"--workdir={wd}", "--resume")
  assert r.returncode == 0, r.stderr[-2000:]
  rd = lambda p: [json.loads(l)["test_accuracy"] for l in open(p / "results.jsonl")]
  assert rd(wd) == rd(full) and len(rd(wd)) == 3
  for k in range(3):
    np.testing.assert_array_equal(np.load(full / "pools" / f"cycle_{k}.npy"),
                                  np.load(wd / "pools" / f"cycle_{k}.npy"))


def test_workdir_in_use_by_a_live_process_is_refused(tmp_path):
  from al_jax import results
  wd = str(tmp_path / "w")
  loop.run(tiny_config("random", **{"al.cycles": 1}), wd, log=quiet)
  holder = results.Workdir(wd)
  holder._acquire_lock()  # stands in for a second process still running in W
  try:
    with pytest.raises(ALError, match="in use by another running process"):
      loop.run(tiny_config("random", **{"al.cycles": 1}), wd, resume=True, log=quiet)
  finally:
    holder.close()
  loop.run(tiny_config("random", **{"al.cycles": 1}), wd, resume=True, log=quiet)


def test_full_label_reference_run_labels_every_point():
  """ARAL §4's "full training" reference: one cycle on every training label; an SSL objective
  then draws its unlabeled batches from the (labeled) training images."""
  cfg = tiny_config("random_mt", **{"al.full_labels": True, "al.cycles": 1,
                                    "train.epochs": 1})
  learner = loop.ActiveLearner(cfg, log=lambda s: None)
  rows = learner.run()
  assert rows[0]["num_labeled"] == len(learner.y_train) and rows[0]["num_selected"] == 0
  cfg.al.cycles = 2
  with pytest.raises(ALError, match="full_labels"):
    loop.ActiveLearner(cfg, log=lambda s: None)


def test_initial_trials_keep_the_median_model_on_validation():
  """CRC §4.1: cycle 0's model is the median of several trials (initialisation and batch
  order), judged on the validation split, never the test set."""
  cfg = tiny_config("random", **{"al.cycles": 1, "al.val_size": 100,
                                 "train.initial_trials": 3, "train.epochs": 1})
  learner = loop.ActiveLearner(cfg, log=lambda s: None)
  pool = learner.initial_pool()
  state, accs, picked = learner.train_initial(pool)
  assert len(accs) == 3 and len(set(accs)) > 1  # the trials differ
  got = learner.evaluate(state, learner.x_val, learner.y_val)["accuracy"]
  assert got == sorted(accs)[1]
  # Each trial draws its own initial pool (trial 0 keeps the shared one); the median trial's
  # pool is the run's cycle-0 labeled set.
  pools = learner.initial_trial_pools(pool)
  assert np.array_equal(pools[0].labeled, pool.labeled)
  assert len({tuple(p.labeled) for p in pools}) == 3
  assert np.array_equal(picked.labeled, pools[accs.index(sorted(accs)[1])].labeled)
  rows = loop.ActiveLearner(cfg, log=lambda s: None).run()
  assert rows[0]["initial_trials_val_accuracy"] == [round(a, 6) for a in accs]
  # The other reading: one pool, other initialisations and batch orders.
  cfg.train.initial_trials_redraw = "init"
  same = loop.ActiveLearner(cfg, log=lambda s: None)
  assert all(np.array_equal(p.labeled, pool.labeled) for p in same.initial_trial_pools(pool))
  cfg.al.val_size = 0
  with pytest.raises(ALError, match="val_size"):
    loop.ActiveLearner(cfg, log=lambda s: None)


def test_select_fn_replaces_the_query_and_is_held_to_the_contract(tmp_path):
  from al_jax.acquisition import Selection
  seen = []

  def lowest_indices(learner, cycle, state, pool, prev_variables):
    # A rule the configured acquisition does not follow: the lowest unlabeled indices.
    seen.append((cycle, pool.num_labeled, prev_variables))
    unl = pool.unlabeled
    return Selection(indices=unl[:learner.config.al.budget], candidates=unl,
                     score_seconds=0.25, select_seconds=0.5)
  wd = str(tmp_path / "w")
  rows = loop.run(tiny_config("entropy"), wd, log=quiet, select_fn=lowest_indices)
  assert [(c, n) for c, n, _ in seen] == [(0, 20), (1, 30)]
  # The previous cycle's model: none before cycle 0's query, cycle 0's before cycle 1's.
  assert seen[0][2] is None and seen[1][2] is not None
  pools = _pools(wd)
  np.testing.assert_array_equal(np.sort(np.setdiff1d(pools["cycle_1.npy"], pools["cycle_0.npy"])),
                                np.setdiff1d(np.arange(10 + 20), pools["cycle_0.npy"])[:10])
  assert [r["score_seconds"] for r in rows] == [0.25, 0.25, 0.0]
  assert [r["select_seconds"] for r in rows] == [0.5, 0.5, 0.0]
  bad = {"not a Selection": lambda *a: {"indices": np.arange(10)},
         "invalid selection": lambda l, c, s, p, v: Selection(
             indices=p.labeled[:10], candidates=p.unlabeled)}
  for msg, fn in bad.items():
    with pytest.raises(ALError, match="must return an al_jax.acquisition.Selection"
                       if msg == "not a Selection" else "invalid selection"):
      loop.run(tiny_config("entropy", **{"al.cycles": 2}), log=quiet, select_fn=fn)
