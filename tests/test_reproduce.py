"""The reproduction ledger: claim decisions, claim statistics, and a two-claim ledger end to end."""

import json
import os

import numpy as np
import pytest

from al_jax import ALError
from experiments import claims as claims_lib
from experiments import floors, reproduce

quiet = lambda s: None
M = claims_lib.Measurement

# Shrinks every member to seconds (as tests/conftest.py's tiny_config).
TINY = (("al.initial", 20), ("al.budget", 10), ("al.cycles", 2), ("train.epochs", 2),
        ("train.batch_size", 16), ("train.unlabeled_batch_size", 16),
        ("eval.chunk_size", 128), ("model.kwargs.widths", (8, 16)),
        ("model.kwargs.hidden", 32))


@pytest.mark.parametrize("values,greater,verdict", [
    ([[0.10], [0.12], [0.11]], True, claims_lib.HOLDS),
    ([[-0.10], [-0.12], [-0.11]], True, claims_lib.FAILS),
    ([[0.10], [-0.12], [0.01]], True, claims_lib.INCONCLUSIVE),
    ([[-0.10], [-0.12], [-0.11]], False, claims_lib.HOLDS),   # "lower than"
    ([[0.10], [0.12], [0.11]], False, claims_lib.FAILS),
    ([[0.10]], True, claims_lib.NOT_MEASURED),                # one seed: no interval
])
def test_decide_reads_the_interval_against_the_threshold(values, greater, verdict):
  assert claims_lib.decide(M(np.array(values), ["all"], 0.0, greater))[0] == verdict


def test_decide_at_every_cycle_and_exact_claims():
  every = np.array([[0.3, 0.2, -0.5], [0.4, 0.3, -0.4], [0.35, 0.25, -0.45]])
  verdict, parts = claims_lib.decide(M(every, ["c1", "c2", "c3"], 0.0))
  assert verdict == claims_lib.FAILS and [p[3] for p in parts] == ["holds"] * 2 + ["does not hold"]
  verdict, _ = claims_lib.decide(M(every[:, :2], ["c1", "c2"], 0.0))
  assert verdict == claims_lib.HOLDS
  # A threshold other than 0 is honoured (AUROC > 0.5): 0.52 ± small is above, 0.48 below.
  assert claims_lib.decide(M(np.array([[0.52], [0.53], [0.52]]), ["a"], 0.5))[0] == "holds"
  assert claims_lib.decide(M(np.array([[0.52], [0.53], [0.52]]), ["a"], 0.6))[0] == (
      "does not hold")
  assert claims_lib.decide(M(np.zeros((3, 1)), ["q"], 0.0, exact=True,
                             checked=[20, 20, 20]))[0] == "holds"
  assert claims_lib.decide(M(np.array([[0.], [1.], [0.]]), ["q"], 0.0, exact=True,
                             checked=[20, 20, 20]))[0] == "does not hold"


@pytest.mark.parametrize("meas,why", [
    (M(np.zeros((3, 0)), [], 0.0), "no part"),                       # no parts
    (M(np.zeros((0, 1)), ["all"], 0.0), "0 seed"),                   # no seeds
    (M(np.array([[0.5]]), ["all"], 0.0), "1 seed"),                  # one seed
    (M(np.array([[0.1], [np.nan]]), ["all"], 0.0), "not finite"),
    (M(np.zeros((3, 1)), ["q"], 0.0, exact=True), "checked no case"),  # exact, nothing checked
    (M(np.zeros((3, 1)), ["q"], 0.0, exact=True, checked=[5, 0, 5]), "checked no case"),
])
def test_no_verdict_without_data(meas, why):
  """A measurement with no parts, no or one seed, or an exact claim that checked nothing is
  never "holds": it is not measured, with the reason."""
  assert claims_lib.decide(meas) == (claims_lib.NOT_MEASURED, [])
  assert why in claims_lib.why_not_measured(meas)


def test_holm_decides_the_family_on_crafted_p_values():
  # Sorted 0.01 ≤ 0.05/3, then 0.03 > 0.05/2: Holm stops there, so only the first survives,
  # although 0.03 and 0.04 are each below 0.05.
  got = claims_lib.holm({"a": 0.03, "b": 0.01, "c": 0.04, "d": None}, alpha=0.05)
  assert got == {"a": False, "b": True, "c": False, "d": False}
  assert claims_lib.holm({"a": 0.01, "b": 0.02}, alpha=0.05) == {"a": True, "b": True}
  assert claims_lib.holm({"a": 0.2}) == {"a": False}


def test_holm_runs_at_the_level_of_the_per_claim_interval():
  # "Holds" needs the two-sided 95% interval beyond the threshold, i.e. one-sided p < 0.025:
  # the family runs at that level, so no claim survives while its own interval straddles.
  b = M(np.array([[0.010], [0.004], [0.012], [-0.003], [0.008]]), ["all"], 0.0)
  assert claims_lib.decide(b)[0] == claims_lib.INCONCLUSIVE
  assert 0.025 < claims_lib.p_value(b) < 0.05
  a = M(np.array([[0.02], [0.03], [0.025]]), ["all"], 0.0)
  assert claims_lib.decide(a)[0] == claims_lib.HOLDS
  assert claims_lib.holm({"a": claims_lib.p_value(a), "b": claims_lib.p_value(b)}) == {
      "a": True, "b": False}
  rs = np.random.default_rng(0)
  for _ in range(200):  # a family of one: survives exactly when it holds
    m = M(rs.normal(rs.normal(0, 0.02), 0.02, size=(5, 1)), ["all"], 0.0)
    assert claims_lib.holm({"x": claims_lib.p_value(m)})["x"] == (
        claims_lib.decide(m)[0] == claims_lib.HOLDS)


def test_a_perfect_ten_bin_trend_does_not_swamp_the_fisher_z_interval():
  # The COD-bin trend is a Spearman ρ over 10 bins, where ρ = 1 is common; arctanh(1) = ∞,
  # and capping at 1 − 1e-12 (z = 14.2) made one perfect seed widen the interval to
  # [−0.98, 1.00] over five clearly positive seeds.
  v = np.array([[0.939], [0.952], [0.976], [1.000], [0.964]])
  meas = M(v, ["cycle 1"], 0.0, transform="fisher_z", points=10)
  assert claims_lib.decide(meas)[0] == claims_lib.HOLDS
  m, lo, hi = claims_lib.interval(meas, 0)
  assert 0.9 < lo < m < hi <= 1 - 12 / 990 + 1e-12
  # On many points (the probe's Spearman) the cap stays next to 1.
  many = M(v, ["cycle 1"], 0.0, transform="fisher_z")
  assert claims_lib._decision_values(many)[0][3, 0] > 10


def test_p_value_is_one_sided_in_the_claimed_direction():
  up = M(np.array([[0.10], [0.12], [0.11]]), ["all"], 0.0)
  down = M(np.array([[0.10], [0.12], [0.11]]), ["all"], 0.0, greater=False)
  assert claims_lib.p_value(up) < 0.01 and claims_lib.p_value(down) > 0.99
  # "At every cycle": the largest part's p (a failing cycle keeps the claim from surviving).
  every = M(np.array([[0.3, -0.1], [0.4, 0.1], [0.35, 0.0]]), ["c1", "c2"], 0.0)
  assert claims_lib.p_value(every) > 0.3
  assert claims_lib.p_value(M(np.zeros((3, 1)), ["q"], 0.0, exact=True,
                              checked=[3, 3, 3])) is None
  assert claims_lib.p_value(M(np.array([[0.5]]), ["all"], 0.0)) is None  # one seed


def _fake_run(tmp_path, name, pools, acc, ece=None, pool_size=20, selection=None):
  """A finished run: pools per cycle, accuracies (and ECE), and what each query recorded."""
  path = tmp_path / name
  (path / "pools").mkdir(parents=True)
  rows = []
  for c, p in enumerate(pools):
    np.save(path / "pools" / f"cycle_{c}.npy", np.asarray(p))
    rows.append({"cycle": c, "num_labeled": len(p), "pool_size": pool_size,
                 "test_accuracy": acc[c], "test_ece": (ece or acc)[c]})
    if selection is not None and c < len(selection):
      rows[-1]["selection"] = selection[c]
  return claims_lib.Run(rows, str(path))


def test_q_claims_pair_seeds_across_all_members_and_check_their_premises(tmp_path):
  # CRC's gain from Q = 20 minus entropy's is computed seed by seed over the seeds all four
  # members finished (a stopped ledger can hold seed 2 for one pair and seed 3 for the other).
  def run(name, q, accs):
    return _fake_run(tmp_path, name, [list(range(10 + q * c)) for c in range(len(accs))], accs)
  runs = {"c20": {0: run("c20_0", 2, [.5, .6, .7]), 1: run("c20_1", 2, [.5, .6, .8]),
                  2: run("c20_2", 2, [.5, .6, .9])},
          "c100": {0: run("c100_0", 4, [.5, .6]), 1: run("c100_1", 4, [.5, .6]),
                   2: run("c100_2", 4, [.5, .6])},
          "e20": {0: run("e20_0", 2, [.5, .6, .65]), 1: run("e20_1", 2, [.5, .6, .6]),
                  3: run("e20_3", 2, [.5, .6, .0])},
          "e100": {0: run("e100_0", 4, [.5, .6]), 1: run("e100_1", 4, [.5, .6]),
                   3: run("e100_3", 4, [.5, .6])}}
  stat = claims_lib.difference_of_differences(
      claims_lib.paired_accuracy_at_labels("c20", "c100", 2, 1),
      claims_lib.paired_accuracy_at_labels("e20", "e100", 2, 1), "gain")
  np.testing.assert_allclose(stat(runs).values.ravel(), [0.7 - 0.65, 0.8 - 0.6])
  # The members must match beyond Q, and each is checked against the floor at the cycle read.
  assert set(stat.compared) == {"c20", "c100", "e20", "e100"}
  assert stat.accuracy_cycles == {"c20": (2,), "c100": (1,), "e20": (2,), "e100": (1,)}
  claim = next(c for c in claims_lib.CLAIMS if c.name == "crc_only_gains_from_smaller_q")
  configs = reproduce.build_configs([claim], "digits", "cpu", [0])
  by = {c.method: c for c in configs}
  assert claims_lib.confounds(claim, by) == []
  by["crc@q100"].unlock() if hasattr(by["crc@q100"], "unlock") else None
  by["crc@q100"].optim.lr = by["crc@q100"].optim.lr * 2
  assert any(f.startswith("optimiser") for f in claims_lib.confounds(claim, by))


def test_a_missing_floor_withholds_the_verdict(tmp_path):
  a = _fake_run(tmp_path, "a", [[0], [0, 1]], [0.5, 0.7])
  b = _fake_run(tmp_path, "b", [[0], [0, 1]], [0.5, 0.6])
  claim = claims_lib.Claim("x", "P", "§1", "a beats b", (claims_lib._m("a", "random"),
                           claims_lib._m("b", "random")), claims_lib.paired_aulc("a", "b"), "Δ")
  runs = {"a": {0: a}, "b": {0: b}}
  assert claims_lib.below_floor(claim, runs, {1: [0.1], 2: [0.1]}) == []
  low = claims_lib.below_floor(claim, runs, {})
  assert low and "no linear-probe floor at 1 labels" in low[0]


def test_degenerate_queries_counts_copies_of_labeled_and_co_queried_images(tmp_path):
  # Pool of 2 copies of 10 images: i and i + 10 are the same image.
  clean = _fake_run(tmp_path, "a", [[0, 1], [0, 1, 2, 3], [0, 1, 2, 3, 14, 5]], [0.5] * 3)
  dup_labeled = _fake_run(tmp_path, "b", [[0, 1], [0, 1, 11, 3]], [0.5] * 2)   # 11 ≡ 1
  dup_query = _fake_run(tmp_path, "c", [[0, 1], [0, 1, 4, 14]], [0.5] * 2)    # 4 ≡ 14
  stat = claims_lib.degenerate_queries("crc@repeated", 2)
  meas = stat({"crc@repeated": {0: clean, 1: dup_labeled, 2: dup_query}})
  np.testing.assert_array_equal(meas.values.ravel(), [0, 1, 1])
  assert list(meas.checked) == [4, 2, 2]  # queried images per seed, printed beside the count


def test_paired_statistics_sign_and_pairing(tmp_path):
  a = _fake_run(tmp_path, "a", [[0], [0, 1], [0, 1, 2]], [0.5, 0.7, 0.8], [0.10, 0.08, 0.05])
  b = _fake_run(tmp_path, "b", [[0], [0, 1], [0, 1, 2]], [0.5, 0.6, 0.7], [0.20, 0.10, 0.08])
  runs = {"a": {0: a}, "b": {0: b}}
  assert claims_lib.paired_aulc("a", "b")(runs).values[0, 0] == pytest.approx(
      a.aulc() - b.aulc()) and a.aulc() > b.aulc()
  assert claims_lib.paired_accuracy_at("a", "b", 1)(runs).values[0, 0] == pytest.approx(0.1)
  # ECE(higher) − ECE(lower): positive when `lower` is better calibrated.
  assert claims_lib.paired_mean_ece("a", "b")(runs).values[0, 0] == pytest.approx(
      np.mean([0.10, 0.02, 0.03]))
  c = _fake_run(tmp_path, "c", [[0], [0, 2], [0, 1, 2]], [0.5] * 3)
  with pytest.raises(ValueError, match="different images"):
    claims_lib.paired_mean_ece("a", "c")({"a": {0: a}, "c": {0: c}})


def test_registry_covers_the_papers_and_members_are_consistent():
  names = {c.name for c in claims_lib.CLAIMS}
  for required in ("tod_cod_spearman", "tod_beats_random", "crtcl_ece", "crtcl_critic_auroc",
                   "lplgrad_beats_ll4al", "lplgrad_beats_entropy", "ent_gradnorm_beats_entropy",
                   "crc_no_duplicates", "crc_beats_random", "aral_beats_labels_only",
                   "aral_beats_vaal", "mean_teacher_beats_supervised",
                   "fixmatch_beats_supervised"):
    assert required in names
  members = claims_lib.members_of(claims_lib.CLAIMS)
  assert len({m.label for m in members}) == len(members)
  # Every member builds a config on the cpu preset (methods and protocols exist).
  configs = reproduce.build_configs(claims_lib.get_claims(["all"], "fashion_mnist"),
                                    "fashion_mnist", "cpu", [0])
  by = {c.method: c for c in configs}
  # The supervised SSL baseline has Mean Teacher's pool and schedule, and its own objective.
  assert by["random@ssl"].objective == "supervised"
  for section in ("al", "train", "optim", "model"):
    ssl, mt = by["random@ssl"][section].to_dict(), by["random_mt"][section].to_dict()
    ssl.pop("cycles", None), mt.pop("cycles", None)  # the SSL claims read the first cycle
    assert ssl == mt, section
  assert by["random@ssl"].al.cycles == by["random_fixmatch"].al.cycles == 1
  assert by["crc@repeated"].al.pool_copies == 2
  # Proposition 2 is about the whole query: CRC searches it as one group.
  assert by["crc@repeated"].acquisition_kwargs.group_size == by["crc@repeated"].al.budget
  assert by["tod"].diagnostics and by["crtcl"].diagnostics
  with pytest.raises(ALError, match="unknown claim"):
    claims_lib.get_claims(["nope"], "digits")
  with pytest.raises(ALError, match="defined for"):
    claims_lib.get_claims(["aral_beats_vaal"], "cifar10")


def test_crc_ledger_members_use_table_4s_group_size():
  # Table 4 (Mean Teacher, Q₀ = 120, Q = 20): "CRC used G = 20" (App. B.1: SVHN G = 20), not
  # the CIFAR rule G = Q/10 = 2; Q = 100 keeps G = 20 so the two differ in Q alone.
  configs = reproduce.build_configs(
      claims_lib.get_claims(["crc_smaller_q_better"], "digits"), "digits", "cpu", [0])
  by = {c.method: c for c in configs}
  assert by["crc@q20"].al.budget == 20 and by["crc@q100"].al.budget == 100
  assert by["crc@q20"].acquisition_kwargs.group_size == 20
  assert by["crc@q100"].acquisition_kwargs.group_size == 20


def test_the_setting_shows_the_rates_runs_train_with_and_declared_differences():
  # FixMatch's objective applies cos(7πe/16E) on a constant optimiser schedule; the supervised
  # member gets the same rates as its schedule. The setting must show both as what they
  # train with, and the difference the claim declares (not counted as a confound) with its
  # reason, so a reader does not see "constant" vs "cosine_7_16" as an unexplained mismatch.
  from experiments.configs import resolve
  cl = claims_lib.get_claims(["fixmatch_beats_supervised", "crc_beats_random"], "fashion_mnist")
  by = {c.method: c for c in reproduce.build_configs(cl, "fashion_mnist", "cpu", [0])}
  fixmatch, crc = (reproduce._setting(c, by) for c in cl)
  assert ("`random_fixmatch`: small_cnn, adam 0.002 constant × FixMatch's cos(7πe/16E) per "
          "epoch, batch 16" in fixmatch)
  assert "`random@fixmatch`: small_cnn, adam 0.002 cosine_7_16, batch 16" in fixmatch
  assert fixmatch.endswith("; declared difference in the optimiser: "
                           + dict(cl[0].allowed)["optimiser"])
  assert "declared" not in crc and "FixMatch" not in crc
  per_step = resolve("random_fixmatch", "fashion_mnist", "cpu",
                     overrides=[("objective_kwargs.cosine_steps", -1)]).config
  assert reproduce._schedule(per_step) == "constant × FixMatch's cos(7πk/16K) per step"
  off = resolve("random_fixmatch", "fashion_mnist", "cpu",
                overrides=[("objective_kwargs.cosine_7_16", False)]).config
  assert reproduce._schedule(off) == "constant"


def test_two_claim_ledger_on_synthetic_runs_resumes_and_writes(tmp_path, monkeypatch):
  # Two-epoch members learn nothing, so the floor check would withhold every accuracy claim
  # (its own test: test_ledger_premises.py); here the decision path itself is under test: a
  # floor of 0 at every label count.
  monkeypatch.setattr(reproduce, "ledger_floors", lambda workdir, runs, configs: {
      int(r["num_labeled"]): [0.0] for by_seed in runs.values() for run in by_seed.values()
      for r in run.rows})
  wd = str(tmp_path / "ledger")
  names = ["tod_beats_random", "tod_cod_spearman"]
  verdicts = reproduce.reproduce(names, "synthetic", [0, 1], wd, overrides=TINY,
                                 command="test", log=quiet)
  assert set(verdicts) == set(names)
  assert all(v in (claims_lib.HOLDS, claims_lib.FAILS, claims_lib.INCONCLUSIVE)
             for v in verdicts.values())
  text = open(os.path.join(wd, "REPRODUCTION.md")).read()
  for n in names:
    assert f"| {n} |" in text and os.path.getsize(os.path.join(wd, "claims", f"{n}.png")) > 0
  assert "runs/report.md" in text and os.path.exists(os.path.join(wd, "runs", "report.md"))
  # The setting names every member's model, optimiser, schedule, labels and length.
  row = next(l for l in text.splitlines() if l.startswith("| tod_beats_random |"))
  assert "`tod`: small_cnn, adam 0.001" in row and "`random@tod`: small_cnn, adam 0.001" in row
  assert row.count("labels") >= 2 and row.count("warm start") == 2
  # The measured cell shows the same 95% interval as the per-claim table, in brackets.
  import re
  assert re.search(r"Δ AULC [+-]\d\.\d{4} \[[+-]\d\.\d{4}, [+-]\d\.\d{4}\]", row), row
  spearman = next(l for l in text.splitlines() if l.startswith("| tod_cod_spearman |"))
  assert not re.search(r"ρ \+", spearman), spearman  # not a difference: no sign
  # Each decided claim shows its one-sided p and whether it survives Holm over the ledger.
  assert "Family-wise (Holm 5%, 2 paper claims)" in text
  assert ("survives |" in row) or ("does not survive |" in row)
  # Paired design: both members of a seed start from the same labeled images.
  pool = lambda m, s: np.load(os.path.join(wd, "runs", m, f"seed_{s}", "pools", "cycle_0.npy"))
  np.testing.assert_array_equal(pool("tod", 0), pool("random@tod", 0))
  # The ledger's statistic equals the per-seed AULC difference read from the results.
  rows = lambda m, s: [json.loads(l) for l in open(os.path.join(
      wd, "runs", m, f"seed_{s}", "results.jsonl"))]
  from experiments.report import aulc
  d = [aulc(np.array([r["num_labeled"] for r in rows("tod", s)], float),
            np.array([r["test_accuracy"] for r in rows("tod", s)]))
       - aulc(np.array([r["num_labeled"] for r in rows("random@tod", s)], float),
              np.array([r["test_accuracy"] for r in rows("random@tod", s)])) for s in (0, 1)]
  assert f"{np.mean(d):+.4f}" in text
  # Re-running a finished ledger retrains nothing and only rewrites it: it adds no wall
  # time, and the header keeps naming the commit that ran the runs (here, as if other code
  # had) beside the commit that wrote the file.
  wall_path = os.path.join(wd, "ledger_wall.json")
  wall = dict(json.load(open(wall_path)), commits=["0ld"])
  json.dump(wall, open(wall_path, "w"))
  logs = []
  reproduce.reproduce(names, "synthetic", [0, 1], wd, overrides=TINY, command="test",
                      log=logs.append)
  assert sum("finished, skipped" in l for l in logs) == 4
  assert json.load(open(wall_path)) == wall
  text = open(os.path.join(wd, "REPRODUCTION.md")).read()
  head = text.split("\nSeeds:")[0]
  assert "Commit: `0ld`  " in head and "continued" not in head
  assert (f"Rewritten at `{reproduce._commit()}` from the finished runs, none re-run: the "
          "runs come from the commit above") in head
  assert f"; wall time {wall['invocations'][0] / 60:.1f} min; " in text
  from al_jax.results import host_info
  assert f"Machine: {host_info()}  " in text  # one machine throughout: no list of them
  # The same ledger re-run from scratch on this machine reproduces every number exactly
  # (only the header's date and wall time differ).
  wd2 = str(tmp_path / "again")
  reproduce.reproduce(names, "synthetic", [0, 1], wd2, overrides=TINY, command="test",
                      log=quiet)
  def body(w):  # every line but commit, date/wall and rewrite lines and the cost table
    text = open(os.path.join(w, "REPRODUCTION.md")).read()
    head, _, rest = text.partition("## Cost per cycle")
    rest = rest[rest.index("\n## "):] if "\n## " in rest else ""
    return [l for l in (head + rest).splitlines()
            if not l.startswith(("Seeds:", "Commit:", "Rewritten at"))]
  assert body(wd2) == body(wd) and any("| tod_beats_random |" in l for l in body(wd2))
  with pytest.raises(ALError, match="different study"):
    reproduce.reproduce(["tod_beats_random"], "synthetic", [0], wd, overrides=TINY, log=quiet)


def test_a_ledger_that_stopped_before_any_run_started_leaves_no_wall_time(tmp_path):
  """An invocation that stops on a setting only the data refuses records no wall time, and
  the next one starts the ledger rather than continuing it."""
  wd = str(tmp_path / "l")
  bad = TINY[1:] + (("al.initial", 10 ** 6),)
  for _ in range(2):
    logs = []
    with pytest.raises(ALError, match="larger than the"):
      reproduce.reproduce(["tod_beats_random"], "synthetic", [0], wd, overrides=bad,
                          log=logs.append)
    assert not os.path.exists(os.path.join(wd, "ledger_wall.json"))
    assert os.path.exists(os.path.join(wd, "runs", "study.json"))
    assert "starting in" in logs[0] and "continuing" not in logs[0]
  wall = reproduce.WallRecord(wd)
  with wall:
    pass
  wall.discard()
  assert not os.path.exists(wall.path)


def test_a_killed_invocation_still_counts_in_the_ledger_wall_time(tmp_path):
  """SIGKILL is the documented way to stop a ledger: the invocation's wall time is on disk
  (rewritten while it runs), and the next invocation adds its own."""
  import signal
  import subprocess
  import sys
  import time
  wd = str(tmp_path)
  code = ("import time; from experiments import reproduce; "
          f"rec = reproduce.WallRecord({wd!r}, every=0.1).__enter__(); "
          "print('started', flush=True); time.sleep(60)")
  p = subprocess.Popen([sys.executable, "-c", code], cwd=os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))), stdout=subprocess.PIPE, text=True)
  assert p.stdout.readline().strip() == "started"
  path = os.path.join(wd, "ledger_wall.json")
  read = lambda: json.load(open(path))["invocations"][0]
  first = read()  # written on entering
  seen, deadline = first, time.time() + 30  # a loaded machine may delay the rewrites
  while seen < first + 0.5 and time.time() < deadline:
    time.sleep(0.05)
    seen = read()  # atomic replacement: always a whole file
  p.send_signal(signal.SIGKILL)
  p.wait()
  killed = json.load(open(path))["invocations"]
  assert len(killed) == 1 and first + 0.5 <= seen <= killed[0] < 60
  with reproduce.WallRecord(wd, every=0.1) as rec:
    time.sleep(0.3)
  parts = json.load(open(os.path.join(wd, "ledger_wall.json")))["invocations"]
  assert parts[0] == killed[0] and len(parts) == 2 and parts[1] >= 0.3
  assert rec.describe().endswith("over 2 invocations (stopped and continued)")


def test_a_ledger_continued_across_commits_names_each_invocations_commit(tmp_path):
  wd = str(tmp_path)
  with open(os.path.join(wd, "ledger_wall.json"), "w") as f:
    json.dump({"invocations": [5.0]}, f)  # written before commits were recorded
  for commit in ("aaa", "aaa", "bbb"):
    with reproduce.WallRecord(wd, every=60, commit=commit) as rec:
      pass
  saved = json.load(open(os.path.join(wd, "ledger_wall.json")))
  assert saved["commits"] == ["", "aaa", "aaa", "bbb"] and len(saved["invocations"]) == 4
  assert rec.describe_commits() == ("invocation 1: commit not recorded; invocations 2–3: "
                                    "`aaa`; invocation 4: `bbb`")
  one = str(tmp_path / "one")
  os.makedirs(one)
  for _ in range(2):
    with reproduce.WallRecord(one, every=60, commit="ccc") as rec:
      pass
  assert rec.describe_commits() == ""  # one commit throughout: the header's Commit line says it


def test_a_ledger_continued_on_another_machine_names_each_invocations_machine(tmp_path):
  wd = str(tmp_path)
  with open(os.path.join(wd, "ledger_wall.json"), "w") as f:
    json.dump({"invocations": [5.0], "commits": ["aaa"]}, f)  # before machines were recorded
  for machine in ("EPYC, 2 CPUs, AVX-512", "EPYC, 2 CPUs, AVX2", "EPYC, 2 CPUs, AVX2"):
    with reproduce.WallRecord(wd, every=60, commit="aaa", machine=machine) as rec:
      pass
  saved = json.load(open(os.path.join(wd, "ledger_wall.json")))
  assert saved["machines"] == ["", "EPYC, 2 CPUs, AVX-512", "EPYC, 2 CPUs, AVX2",
                               "EPYC, 2 CPUs, AVX2"]
  assert rec.describe_machines() == ("invocation 1: machine not recorded; invocation 2: "
                                     "EPYC, 2 CPUs, AVX-512; invocations 3–4: EPYC, 2 CPUs, AVX2")
  assert rec.describe_commits() == ""


def test_the_header_names_the_accelerators_runs_ran_on(tmp_path):
  def run(name, env):
    path = tmp_path / name
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"config": {}, "environment": env}))
    return str(path)
  cpu = run("cpu", {"backend": "cpu", "device_kind": "cpu"})
  gpu = run("gpu", {"backend": "gpu", "device_kind": "NVIDIA H100 80GB HBM3"})
  old = run("old", {"backend": "gpu"})  # written before device kinds were recorded
  assert reproduce.run_accelerators([cpu]) == []
  assert reproduce.run_accelerators([cpu, gpu, gpu, old, str(tmp_path / "missing")]) == [
      "NVIDIA H100 80GB HBM3 (gpu)", "device kind not recorded (gpu)"]


def test_host_info_names_this_cpu():
  from al_jax.results import environment_info, host_info
  host = host_info()
  assert f"{os.cpu_count()} CPUs" in host and not host.startswith(",")
  if os.path.exists("/proc/cpuinfo"):
    model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                  if l.startswith("model name")), None)
    assert model is None or host.startswith(model)
  env = environment_info()
  assert env["host"] == host and env["device_kind"]


def test_linear_probe_floor_is_nested_and_learns():
  from al_jax.data import DATASETS
  ds = DATASETS.get("digits")(seed=0)
  out = floors.linear_probe(ds, [20, 200], [0, 1])
  assert np.mean(out[200]) > np.mean(out[20]) > 0.3
  assert np.mean(out[200]) > 0.85  # logistic regression on 8×8 digits


def test_pool_copies_repeats_every_training_image(make_config):
  from al_jax import loop
  one = loop.ActiveLearner(make_config("random", "synthetic"), log=quiet)
  two = loop.ActiveLearner(make_config("random", "synthetic", **{"al.pool_copies": 2}),
                           log=quiet)
  n = len(one.y_train)
  assert len(two.y_train) == 2 * n
  np.testing.assert_array_equal(two.x_train[n:], one.x_train)
  np.testing.assert_array_equal(two.y_train[:n], two.y_train[n:])
  with pytest.raises(ALError, match="pool_copies"):
    loop.ActiveLearner(make_config("random", "synthetic", **{"al.pool_copies": 0}), log=quiet)


def test_twin_members_run_once_and_both_read_that_run(tmp_path, monkeypatch):
  """One pairing, one configuration: `random@tod` and `random@lplgrad` resolve to the same
  config but for their names and protocol labels, so the ledger runs it once and both claims
  read that run; a ledger whose study already lists both (started before twins merged)
  continues as it started."""
  from experiments import study as study_lib
  names = ["tod_beats_random", "lplgrad_beats_random"]
  configs = reproduce.build_configs(claims_lib.get_claims(names, "digits"), "digits", "cpu",
                                    [0, 1])
  assert reproduce.twin_members(configs) == {"random@lplgrad": "random@tod"}
  other = reproduce.build_configs(claims_lib.get_claims(names, "digits"), "digits", "cpu", [0])
  by = {c.method: c for c in other}
  by["random@lplgrad"].unlock()
  by["random@lplgrad"].optim.lr *= 2  # any other difference: two runs
  assert reproduce.twin_members(other) == {}

  studied = []

  def study(configs, runs_dir, resume, log, workers):
    studied.append(sorted({c.method for c in configs}))
    raise ALError("stopped by the test")

  monkeypatch.setattr(study_lib, "run_study", study)
  wd = str(tmp_path / "new")
  with pytest.raises(ALError, match="stopped by the test"):
    reproduce.reproduce(names, "digits", [0], wd, log=quiet)
  assert studied[-1] == ["lplgrad", "random@tod", "tod"]
  old = tmp_path / "old" / "runs"
  old.mkdir(parents=True)
  (old / "study.json").write_text(json.dumps({"runs": [
      {"method": m, "seed": 0} for m in ("tod", "random@tod", "lplgrad", "random@lplgrad")]}))
  with pytest.raises(ALError, match="stopped by the test"):
    reproduce.reproduce(names, "digits", [0], str(tmp_path / "old"), log=quiet)
  assert studied[-1] == ["lplgrad", "random@lplgrad", "random@tod", "tod"]

  # Both members read the one run, and the setting column says so.
  run = tmp_path / "runs" / "random@tod" / "seed_0"
  run.mkdir(parents=True)
  (run / "config.json").write_text("{}")
  (run / "results.jsonl").write_text("".join(
      json.dumps({"cycle": k, "num_labeled": 20 + 10 * k, "test_accuracy": 0.5}) + "\n"
      for k in range(configs[0].al.cycles)))
  seed0 = [c for c in configs if c.seed == 0]
  twins = reproduce.twin_members(configs)
  runs = reproduce.load_member_runs(str(tmp_path / "runs"), seed0, twins)
  assert runs["random@lplgrad"][0].path == runs["random@tod"][0].path == str(run)
  assert "random@lplgrad" not in reproduce.load_member_runs(str(tmp_path / "runs"), seed0)
  claim = claims_lib.get_claims(["lplgrad_beats_random"], "digits")[0]
  assert "the same run as `random@tod`" in reproduce._setting(claim, {c.method: c for c in seed0},
                                                              twins)


def test_a_ledger_with_twins_counts_their_run_once(tmp_path, monkeypatch):
  names = ["tod_beats_random", "lplgrad_beats_random"]
  claims = claims_lib.get_claims(names, "digits")
  configs = reproduce.build_configs(claims, "digits", "cpu", [0, 1])
  twins = reproduce.twin_members(configs)
  assert twins == {"random@lplgrad": "random@tod"}
  cycles = configs[0].al.cycles
  for c in configs:
    if c.method in twins:
      continue
    run = tmp_path / "runs" / c.method / f"seed_{c.seed}"
    (run / "pools").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    rows = []
    for k in range(cycles):
      np.save(run / "pools" / f"cycle_{k}.npy", np.arange(20 + 10 * k))
      rows.append({"method": c.method, "seed": c.seed, "cycle": k, "num_labeled": 20 + 10 * k,
                   "pool_size": 1000, "test_accuracy": 0.5 + 0.01 * k, "test_ece": 0.1,
                   "train_seconds": 10.0, "query_seconds": 1.0})
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
  monkeypatch.setattr(reproduce, "ledger_floors", lambda workdir, runs, configs: {
      20 + 10 * k: [0.0, 0.0] for k in range(cycles)})
  reproduce.write_ledger(str(tmp_path), claims, configs, "test", twins=twins)
  text = open(tmp_path / "REPRODUCTION.md").read()
  # Three runs per seed (tod, random@tod, lplgrad), each counted once: 6 × cycles × 11 s.
  assert f"member training + evaluation + query time {6 * cycles * 11 / 60:.1f} min" in text
  row = next(l for l in text.splitlines() if l.startswith("| lplgrad_beats_random |"))
  assert "the same run as `random@tod`" in row
  cost = text[text.index("## Cost per cycle"):].split("\n## ")[0]
  assert cost.count("| random@tod | 2 |") == 1 and "random@lplgrad" not in cost
