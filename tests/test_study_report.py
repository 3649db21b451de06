"""Studies (method × seed, paired initial pools, resumable) and the report."""

import json
import os

import numpy as np
import pytest

from al_jax import ALError
from experiments import report, study
from tests.conftest import tiny_config

quiet = lambda s: None


def test_study_pairs_pools_resumes_and_reports(tmp_path):
  wd = str(tmp_path / "s")
  cfgs = [tiny_config(m, seed=s, **{"al.cycles": 2}) for m in ("random", "entropy")
          for s in (0, 1)]
  out = study.run_study(cfgs, wd, resume=False, log=quiet)
  assert len(out) == 4
  p = lambda m, s: np.load(os.path.join(wd, m, f"seed_{s}", "pools", "cycle_0.npy"))
  np.testing.assert_array_equal(p("random", 0), p("entropy", 0))  # paired design
  assert not np.array_equal(p("random", 0), p("random", 1))
  with pytest.raises(ALError, match="pass --resume"):
    study.run_study(cfgs, wd, resume=False, log=quiet)
  logs = []
  study.run_study(cfgs, wd, resume=True, log=logs.append)
  assert sum("finished, skipped" in l for l in logs) == 4
  with pytest.raises(ALError, match="different study"):
    study.run_study(cfgs[:2], wd, resume=True, log=quiet)

  out = report.write_report(wd, target=0.0)
  for f in ("report.md", "accuracy_vs_labels.png", "ece_vs_labels.png", "results.csv",
            "summary.csv"):
    assert os.path.getsize(os.path.join(wd, f)) > 0
  text = open(os.path.join(wd, "report.md")).read()
  assert "Paired comparison against `random`" in text and "| entropy | 2 |" in text
  # The linear-probe floor at the study's label counts, beside the curves.
  assert "## Linear-probe floor" in text and set(out["floors"]) == {20, 30}
  assert all(0.0 <= a <= 1.0 for accs in out["floors"].values() for a in accs)
  assert os.path.exists(os.path.join(wd, "floors.json"))
  assert {r["method"] for r in out["summary"]} == {"random", "entropy"}
  assert out["paired"]["entropy"]["n"] == 2

  # The same-labels probe: one row per run and cycle, fitted on that cycle's own pool (a
  # probe on other labels, or the model's accuracy copied, would differ from the direct fit).
  from al_jax.data import DATASETS
  from experiments import floors
  rows, skipped = floors.same_label_margins(wd)
  assert not skipped and len(rows) == 4 * 2
  ds = DATASETS.get("digits")(seed=0)  # tiny_config's dataset
  flat = lambda x: x.reshape(len(x), -1).astype(np.float32) / 255.0
  r = next(r for r in rows if (r["method"], r["seed"], r["num_labeled"]) == ("entropy", 1, 30))
  idx = np.load(os.path.join(wd, "entropy", "seed_1", "pools", "cycle_1.npy"))
  assert len(idx) == 30
  direct = floors._fit_probe(flat(ds.x_train), ds.y_train, flat(ds.x_test), ds.y_test, idx)
  assert r["probe_accuracy"] == pytest.approx(direct)
  assert r["model_accuracy"] == next(x for x in report.load_runs(
      os.path.join(wd, "entropy", "seed_1"))[0] if x["cycle"] == 1)["test_accuracy"]


def test_aulc_and_paired_statistics_exact():
  assert report.aulc(np.array([0.0, 10.0, 20.0]), np.array([0.2, 0.4, 0.6])) == pytest.approx(0.4)
  assert report.aulc(np.array([5.0]), np.array([0.7])) == pytest.approx(0.7)
  m, half, p = report.mean_ci(np.array([0.1, 0.2, 0.3]))
  # mean 0.2, sd 0.1, t(0.975, 2) = 4.3027 → half-width 0.1 * 4.3027 / sqrt(3)
  assert m == pytest.approx(0.2) and half == pytest.approx(0.24841, rel=1e-4)
  assert p == pytest.approx(0.07418, rel=1e-3)  # t = 3.464, df 2


def test_a_study_that_stopped_before_any_run_started_is_started_afresh(tmp_path):
  """A setting only the data refuses (a budget beyond the pool) stops the study after its
  study.json is written; the corrected command — another study spec or the same one — then
  starts it without --resume instead of refusing a directory that holds nothing."""
  wd = str(tmp_path / "s")
  bad = [tiny_config(m, **{"al.cycles": 1, "al.initial": 10 ** 6}) for m in ("random", "margin")]
  with pytest.raises(ALError, match="larger than the"):
    study.run_study(bad, wd, resume=False, log=quiet)
  assert os.path.exists(os.path.join(wd, "study.json"))
  with pytest.raises(ALError, match="larger than the"):  # the same spec: no --resume needed
    study.run_study(bad, wd, resume=False, log=quiet)
  good = [tiny_config(m, **{"al.cycles": 1}) for m in ("random", "entropy")]
  out = study.run_study(good, wd, resume=False, log=quiet)  # another spec: replaced
  assert len(out) == 2 and all(len(rows) == 1 for rows in out.values())
  assert [r["method"] for r in json.load(open(os.path.join(wd, "study.json")))["runs"]] == [
      "random", "entropy"]
  # Once a run has started, the protections stand.
  with pytest.raises(ALError, match="different study"):
    study.run_study(bad, wd, resume=False, log=quiet)
  with pytest.raises(ALError, match="pass --resume"):
    study.run_study(good, wd, resume=False, log=quiet)


def _fake_run(wd, method, seed, accs, labels, query=1.0):
  d = os.path.join(wd, method, f"seed_{seed}")
  os.makedirs(d, exist_ok=True)
  with open(os.path.join(d, "results.jsonl"), "w") as f:
    for k, (a, n) in enumerate(zip(accs, labels)):
      f.write(json.dumps({"method": method, "seed": seed, "cycle": k, "num_labeled": n,
                          "dataset": "digits", "test_accuracy": a, "test_ece": 0.1,
                          "train_seconds": 2.0, "eval_seconds": 0.5,
                          "query_seconds": query if k < len(accs) - 1 else 0.0}) + "\n")


def test_the_report_says_what_its_numbers_compare(tmp_path):
  """Label schedules in the summary, the target's rule, 'at start', per-query seconds, an
  unfinished seed named, and paired differences only on the baseline's label schedule."""
  wd = str(tmp_path)
  for s in (0, 1):
    _fake_run(wd, "random", s, [0.5, 0.6, 0.7], [10, 20, 30])
    _fake_run(wd, "entropy", s, [0.5, 0.7, 0.8] if s == 0 else [0.5, 0.65], [10, 20, 30],
              query=3.0)
    _fake_run(wd, "big", s, [0.9, 0.9], [100, 200])
  out = report.write_report(wd, baseline="random", floor=False)
  text = open(os.path.join(wd, "report.md")).read()
  assert "| random | 2 | 10→30 (3) |" in text and "| big | 2 | 100→200 (2) |" in text
  assert "Members with different *labels* are not comparable" in text
  assert "(95% of the best member's final mean accuracy)" in text
  assert "| 100 (at start) |" in text  # big's first cycle already ≥ 0.95 × 0.9
  assert text.count("| 2.00 | 3.00 |") == 1  # entropy: its queries' mean, not diluted by 0
  assert "entropy: read up to cycle 1 (2 cycles), where seed(s) 1 stopped" in text
  assert "| big | 2 | not compared: another label schedule than the baseline's" in text
  # entropy vs random over the 2 cycles both finished: Δ at 20 labels, AULC over 10→20.
  assert out["paired"]["entropy"]["labels"] == 20
  assert out["paired"]["entropy"]["final"][0] == pytest.approx((0.1 + 0.05) / 2)
  assert out["paired"]["entropy"]["aulc"][0] == pytest.approx((0.05 + 0.025) / 2)
  summary = open(os.path.join(wd, "summary.csv")).read().splitlines()
  assert summary[0].startswith("method,seeds,first_labels,last_labels,cycles,")
  report.write_report(wd, baseline="nope", floor=False)
  assert "No member is named `nope`: pass `--baseline=NAME`" in open(
      os.path.join(wd, "report.md")).read()
