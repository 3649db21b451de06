"""Nothing lost, nothing silently wrong: a damaged newest checkpoint, a full disk, health flags.

Each failure stops (or continues) with one line, keeps every finished cycle's files, and a
`--resume` afterwards gives the results of an uninterrupted run.
"""

import errno
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from al_jax import ALError, health, loop
from al_jax import results as results_lib
from al_jax.recording import TIMING_FIELDS
from experiments import report
from tests.conftest import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
quiet = lambda s: None
_TIMING = TIMING_FIELDS  # al_jax.recording: wall-clock fields differ between equal runs


def _cfg(**kw):
  return tiny_config("entropy", **{"al.cycles": 3, "train.epochs": 1, "log_every": 1, **kw})


def _rows(wd):
  return [{k: v for k, v in r.items() if k not in _TIMING}
          for r in results_lib.Workdir(wd).read_results()]


def _pools(wd):
  d = os.path.join(wd, "pools")
  return {f: np.load(os.path.join(d, f)).tolist() for f in sorted(os.listdir(d))
          if f.endswith(".npy")}


@pytest.fixture(scope="module")
def full(tmp_path_factory):
  """An uninterrupted run: the reference every damaged-and-resumed run must equal."""
  wd = str(tmp_path_factory.mktemp("full") / "w")
  loop.run(_cfg(), wd, log=quiet)
  return wd


def _assert_same_run(wd, full):
  assert _rows(wd) == _rows(full)
  assert _pools(wd) == _pools(full)


def _run_until(wd, cycle_label):
  """Runs and dies (KeyboardInterrupt) when the log reaches `cycle_label`."""
  def crash(msg):
    if msg.startswith(cycle_label):
      raise KeyboardInterrupt
  with pytest.raises(KeyboardInterrupt):
    loop.run(_cfg(), wd, log=crash)


# --- a damaged newest checkpoint --------------------------------------------------------------
def _damage(step_dir, how):
  files = [os.path.join(r, f) for r, _, fs in os.walk(step_dir) for f in fs]
  if how == "truncate":  # the biggest array file, cut in half (a disk that lost its tail)
    big = max(files, key=os.path.getsize)
    os.truncate(big, os.path.getsize(big) // 2)
  elif how == "garble":  # every byte of the AL state's metadata overwritten
    meta = os.path.join(step_dir, "al", "_METADATA")
    with open(meta, "r+b") as f:
      n = len(f.read())
      f.seek(0)
      f.write(b"\x07" * n)
  else:  # a checkpoint that restores but is not cycle 1's: another run's copied over
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["truncate", "garble"])
def test_damaged_newest_checkpoint_falls_back_to_the_one_before(how, full, tmp_path):
  wd = str(tmp_path / "w")
  _run_until(wd, "cycle 3/3 | labeled")  # checkpoints 0 and 1 finished
  work = results_lib.Workdir(wd)
  assert sorted(work.manager.all_steps()) == [0, 1]
  work.close()
  _damage(os.path.join(wd, "checkpoints", "1"), how)
  logs = []
  loop.run(_cfg(), wd, resume=True, log=logs.append)
  said = [l for l in logs if "damaged" in l]
  assert len(said) == 1 and said[0].startswith("checkpoint 1 is damaged (unreadable: ") and \
      said[0].endswith(f"): moved to {os.path.join(wd, 'corrupt_checkpoints')}, resuming "
                       "from checkpoint 0"), logs
  assert "resuming after cycle 0 (30 labeled)" in logs
  _assert_same_run(wd, full)
  # The damaged checkpoint is kept aside for inspection, out of orbax's way.
  assert os.listdir(os.path.join(wd, "corrupt_checkpoints")) == ["1"]


def test_checkpoint_disagreeing_with_results_is_not_used(full, tmp_path):
  """A checkpoint that restores but whose labeled set is not what results.jsonl says it
  must be (here: its row's selection lost) is passed over like a torn one."""
  wd = str(tmp_path / "w")
  _run_until(wd, "cycle 3/3 | labeled")
  rows = results_lib.Workdir(wd).read_results()
  rows[1]["num_selected"] += 1  # cycle 1's checkpoint now disagrees with its row
  with open(os.path.join(wd, "results.jsonl"), "w") as f:
    f.write("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
  logs = []
  loop.run(_cfg(), wd, resume=True, log=logs.append)
  assert any(l.startswith("checkpoint 1 is damaged (its labeled set has 40 points, the "
                          "results row says 30 + 11 selected): moved to ") for l in logs), logs
  _assert_same_run(wd, full)


def test_no_checkpoint_restores_is_one_line(tmp_path):
  wd = str(tmp_path / "w")
  _run_until(wd, "cycle 3/3 | labeled")
  for step in ("0", "1"):
    _damage(os.path.join(wd, "checkpoints", step), "garble")
  with pytest.raises(ALError, match=r"no checkpoint in .* restores: checkpoint 1 is damaged "
                     r"\(unreadable: .*\); checkpoint 0 is damaged \(unreadable: ") as e:
    loop.run(_cfg(), wd, resume=True, log=quiet)
  assert "\n" not in str(e.value)
  assert len(_rows(wd)) == 2  # nothing was removed


# --- a full disk at each write site -----------------------------------------------------------
def _enospc(path):
  return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)


def _patch_site(monkeypatch, site, wd):
  """Makes one writer raise ENOSPC when it writes cycle 1's file (config: every write)."""
  real_open, real_save = open, np.save

  def fake_open(path, mode="r", *a, **kw):
    path_s = str(path)
    if "w" in mode or "a" in mode:
      if site == "results" and path_s.endswith("results.jsonl") and len(
          results_lib.Workdir(wd).read_results()) >= 1:
        raise _enospc(path_s)
      if site == "config" and path_s.endswith("config.json.tmp"):
        raise _enospc(path_s)
    return real_open(path, mode, *a, **kw)

  def fake_save(path, *a, **kw):
    if str(path).endswith(".cycle_1.npy"):
      raise _enospc(str(path))
    return real_save(path, *a, **kw)

  real_ckpt_save = results_lib.ocp.CheckpointManager.save

  def fake_ckpt_save(self, step, *a, **kw):
    if step == 1:
      raise _enospc(os.path.join(wd, "checkpoints", "1", "state"))
    return real_ckpt_save(self, step, *a, **kw)

  real_wait = results_lib.ocp.CheckpointManager.wait_until_finished

  def fake_wait(self):
    real_wait(self)
    if 1 in self.all_steps() or os.path.exists(os.path.join(wd, "checkpoints", "1")):
      # What orbax's background save raises on a full disk (tensorstore's status text).
      raise ValueError('RESOURCE_EXHAUSTED: Error writing "opt_state.count/0" in OCDBT '
                       'database at local file "checkpoints/1/state/": [OS error: No space '
                       'left on device]')

  if site in ("results", "config"):
    monkeypatch.setattr(results_lib, "open", fake_open, raising=False)
  elif site == "pool":
    monkeypatch.setattr(results_lib.np, "save", fake_save)
  elif site == "checkpoint":
    monkeypatch.setattr(results_lib.ocp.CheckpointManager, "save", fake_ckpt_save)
  elif site == "checkpoint_async":
    monkeypatch.setattr(results_lib.ocp.CheckpointManager, "wait_until_finished", fake_wait)
  else:
    raise AssertionError(site)


@pytest.mark.parametrize("site,path", [
    ("results", "results.jsonl"), ("pool", "pools/cycle_1.npy"),
    ("checkpoint", "checkpoints/1"), ("checkpoint_async", "checkpoints/1"),
    ("config", "config.json")])
def test_full_disk_at_each_write_site_is_one_line_and_resumes(site, path, full, tmp_path,
                                                              monkeypatch):
  wd = str(tmp_path / "w")
  if site == "config":
    # config.json is rewritten at every start: fail the --resume's start.
    _run_until(wd, "cycle 3/3 | labeled")
  with monkeypatch.context() as m:
    _patch_site(m, site, wd)
    with pytest.raises(ALError) as e:
      loop.run(_cfg(), wd, resume=site == "config", log=quiet)
  msg = str(e.value)
  assert "\n" not in msg and f"cannot write {os.path.join(wd, path)}: ENOSPC" in msg, msg
  assert "rerun with --resume" in msg
  # Every finished cycle's files are readable and are the uninterrupted run's.
  rows = _rows(wd)
  assert rows[0] == _rows(full)[0]
  assert _pools(wd)["cycle_0.npy"] == _pools(full)["cycle_0.npy"]
  work = results_lib.Workdir(wd)
  assert work.latest_checkpoint() in (0, 1)
  work.close()
  assert not [f for f in os.listdir(os.path.join(wd, "pools")) if f.startswith(".")]
  loop.run(_cfg(), wd, resume=True, log=quiet)
  _assert_same_run(wd, full)


def test_full_disk_on_a_fresh_start_leaves_the_directory_rerunnable(full, tmp_path,
                                                                    monkeypatch):
  wd = str(tmp_path / "w")
  with monkeypatch.context() as m:
    _patch_site(m, "config", wd)
    with pytest.raises(ALError, match="cannot write .*config.json: ENOSPC"):
      loop.run(_cfg(), wd, log=quiet)
  assert os.listdir(wd) == []
  loop.run(_cfg(), wd, log=quiet)
  _assert_same_run(wd, full)


def test_full_disk_writing_the_report_is_one_line(full, monkeypatch):
  real_open = open

  def fake_open(path, mode="r", *a, **kw):
    if str(path).endswith("report.md") and "w" in mode:
      raise _enospc(str(path))
    return real_open(path, mode, *a, **kw)
  monkeypatch.setattr(report, "open", fake_open, raising=False)
  with pytest.raises(ALError, match=f"cannot write {os.path.join(full, 'report.md')}: ENOSPC"):
    report.write_report(full, floor=False)


def test_write_errno_reads_orbax_and_tensorstore_errors():
  assert results_lib.write_errno(_enospc("x")) == errno.ENOSPC
  assert results_lib.write_errno(OSError(errno.EROFS, "ro")) == errno.EROFS
  assert results_lib.write_errno(PermissionError(errno.EACCES, "no")) == errno.EACCES
  try:
    try:
      raise _enospc("x")
    except OSError as inner:
      raise RuntimeError("save failed") from inner
  except RuntimeError as outer:
    assert results_lib.write_errno(outer) == errno.ENOSPC
  assert results_lib.write_errno(ValueError("RESOURCE_EXHAUSTED: Error writing")) == errno.ENOSPC
  assert results_lib.write_errno(ValueError("a bug")) is None
  assert results_lib.write_errno(OSError(errno.EBADF, "not a disk problem")) is None


def _can_mount_tmpfs(where, size):
  if os.geteuid() != 0 or not shutil.which("mount"):
    return "needs root and mount(8) to mount a small tmpfs"
  os.makedirs(where, exist_ok=True)
  r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", where],
                     capture_output=True, text=True)
  return None if r.returncode == 0 else f"mount -t tmpfs failed: {r.stderr.strip()[:200]}"


def test_real_full_tmpfs_stops_cleanly_and_resumes_identically(tmp_path):
  """A 1000 KB tmpfs fills during the digits run (the cpu preset's CNN: ~0.7 MB a
  checkpoint, so cycle 0's fits and cycle 1's does not): one line, exit 2, cycle 0's files
  readable; moved to a disk with space, `--resume` completes like an uninterrupted run."""
  small = str(tmp_path / "small")
  why = _can_mount_tmpfs(small, "1000k")
  if why:
    pytest.skip(why)
  try:
    common = ["--method=entropy", "--dataset=digits", "--cycles=3", "--initial=20",
              "--budget=10", "--epochs=1"]
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    cli = lambda *a: subprocess.run([sys.executable, "-m", "experiments.main", *common, *a],
                                    cwd=ROOT, env=env, capture_output=True, text=True,
                                    timeout=600)
    ref = str(tmp_path / "ref")
    assert cli(f"--workdir={ref}").returncode == 0
    wd = os.path.join(small, "w")
    r = cli(f"--workdir={wd}")
    err = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(err) == 1 and "ENOSPC" in err[0] and \
        err[0].startswith(f"error: cannot write {wd}"), r.stderr[-3000:]
    with open(os.path.join(wd, "results.jsonl")) as f:
      rows = [json.loads(l) for l in f]
    assert rows and all(os.path.exists(os.path.join(wd, "pools", f"cycle_{r['cycle']}.npy"))
               for r in rows)
    moved = str(tmp_path / "moved")
    shutil.copytree(wd, moved, symlinks=True)
  finally:
    subprocess.run(["umount", small], check=False)
  r = cli(f"--workdir={moved}", "--resume")
  assert r.returncode == 0, r.stderr[-3000:]
  _assert_same_run(moved, ref)


def test_unwritable_workdir_is_one_line_and_exit_2(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  r = subprocess.run([sys.executable, "-m", "experiments.main",
                      "--workdir=/proc/al_jax_cannot_write_here"], cwd=ROOT, env=env,
                     capture_output=True, text=True, timeout=120)
  err = r.stderr.strip().splitlines()
  assert r.returncode == 2 and len(err) == 1, r.stderr[-2000:]
  assert err[0].startswith("error: --workdir=/proc/al_jax_cannot_write_here: cannot create")


# --- health flags -----------------------------------------------------------------------------
def test_train_accuracy_at_chance_flag():
  # 10 classes, 20 labels: chance is 0.1 + 3·sqrt(0.09/20) ≈ 0.301.
  assert health.chance_accuracy(10, 20) == pytest.approx(0.1 + 3 * np.sqrt(0.09 / 20))
  at = [{"loss": 2.3, "accuracy": a} for a in (0.10, 0.20, 0.30)]
  assert health.flags(at, 10, 20) == ["train_acc_at_chance"]
  learned = at + [{"loss": 1.0, "accuracy": 0.35}]
  assert health.flags(learned, 10, 20) == []
  # More labels, tighter: 15% on 1000 labels is above chance (0.128), not on 100 (0.19).
  assert health.flags([{"accuracy": 0.15}], 10, 1000) == []
  assert health.flags([{"accuracy": 0.15}], 10, 100) == ["train_acc_at_chance"]
  assert health.flags([{"loss": 1.0}], 10, 20) == []  # no accuracy metric: no claim


def test_side_loss_diverged_flag():
  ok = [{"accuracy": 0.9, "module_loss": 1.0}, {"accuracy": 0.9, "module_loss": 9.9}]
  assert health.flags(ok, 10, 20) == []
  up = ok + [{"accuracy": 0.9, "module_loss": 10.5}]
  assert health.flags(up, 10, 20) == ["side_loss_diverged:module_loss"]
  nan = [{"accuracy": 0.9, "sampler_loss": 1.4}, {"accuracy": 0.9, "sampler_loss": float("nan")}]
  assert health.flags(nan, 10, 20) == ["side_loss_diverged:sampler_loss"]
  # Negative losses compare in absolute value; a side model that starts later (0 before)
  # is judged against its first non-zero epoch.
  assert health.diverged_side_losses([{"eg_loss": -0.5}, {"eg_loss": -6.0}]) == ["eg_loss"]
  # The critic's Wasserstein loss falls to its clip box by design (CrtCl Eq. 4 once every
  # labeled prediction is correct): only a non-finite value is a divergence, and flags that
  # earlier runs recorded for its size are not shown.
  assert health.diverged_side_losses([{"critic_loss": -0.01}, {"critic_loss": -6.0}]) == []
  assert health.diverged_side_losses([{"critic_loss": -0.01}, {"critic_loss": float("nan")}]) \
      == ["critic_loss"]
  assert health.current(["side_loss_diverged:critic_loss", "train_acc_at_chance"]) == [
      "train_acc_at_chance"]
  late = [{"gen_loss": 0.0}, {"gen_loss": 0.5}, {"gen_loss": 2.0}]
  assert health.diverged_side_losses(late) == []
  # The classifier's own loss is not a side model's.
  assert health.diverged_side_losses([{"loss": 0.1}, {"loss": 50.0}]) == []


def test_health_in_rows_report_and_a_healthy_run_has_none(tmp_path):
  """A run that learns has no flags; one whose learning rate is ~0 stays at chance and its
  rows, the log and the report say so."""
  healthy = str(tmp_path / "healthy")
  over = {"al.cycles": 1, "train.epochs": 6, "train.min_steps_per_epoch": 8}
  rows = loop.run(tiny_config("entropy", **over), healthy, log=quiet)
  assert rows[0]["health"] == []
  stuck = str(tmp_path / "stuck")
  logs = []
  rows = loop.run(tiny_config("entropy", **over, **{"optim.lr": 1e-12}), stuck,
                  log=logs.append)
  assert rows[0]["health"] == ["train_acc_at_chance"]
  assert "cycle 1/1 health: train_acc_at_chance" in logs
  out = report.write_report(str(tmp_path), floor=False)
  text = (tmp_path / "report.md").read_text()
  assert "## Health" in text and "| entropy | 0 | 0 | 20 | train_acc_at_chance |" in text
  assert out["health"] == [("entropy", 0, 0, 20, ["train_acc_at_chance"])]


def test_ledger_flags_claims_decided_on_flagged_cycles():
  from types import SimpleNamespace
  from experiments import claims as claims_lib
  from experiments import reproduce
  row = lambda k, h: {"cycle": k, "num_labeled": 20 + 10 * k, "health": h}
  runs = {"tod": {0: claims_lib.Run([row(0, []), row(1, ["train_acc_at_chance"])], "p")},
          "random": {0: claims_lib.Run([row(0, []), row(1, [])], "q")}}
  claim = SimpleNamespace(members=[SimpleNamespace(label="tod"), SimpleNamespace(label="random")])
  assert reproduce._health(claim, runs) == [("tod", 0, 1, ["train_acc_at_chance"])]
  runs["tod"][0].rows[1]["health"] = []
  assert reproduce._health(claim, runs) == []
