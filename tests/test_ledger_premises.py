"""The ledger withholds a verdict where it would not be evidence: confounded members, a member
below the linear-probe floor, a claim whose premise fails; correlations on Fisher's z."""

import jax
import numpy as np
import pytest

from experiments import claims as claims_lib
from experiments import reproduce
from tests.test_reproduce import _fake_run as _run

M = claims_lib.Measurement


def _claim(members, statistic, **kw):
  return claims_lib.Claim("x", "P", "Fig. 1", "A beats B.", tuple(members), statistic, "Δ AULC",
                          **kw)


def test_members_that_differ_beyond_what_is_compared_are_confounded():
  # ARAL against VAAL's own preset: another classifier, optimiser and schedule.
  a, v = claims_lib._m("aral", "aral"), claims_lib._m("vaal", "vaal")
  claim = _claim((a, v), claims_lib.paired_aulc("aral", "vaal"))
  by = {c.method: c for c in reproduce.build_configs([claim], "fashion_mnist", "cpu", [0])}
  got = claims_lib.confounds(claim, by)
  factors = [g.split(" ")[0] for g in got]
  assert "model" in factors and "optimiser" in factors
  assert any("'noisy_mlp' vs 'small_cnn'" in g for g in got)
  # A factor the claim declares (with its reason) is not a confound; the others still are.
  allowed = _claim((a, v), claims_lib.paired_aulc("aral", "vaal"),
                   allowed=(("optimiser", "tuned per learner"),))
  assert [g.split(" ")[0] for g in claims_lib.confounds(allowed, by)] == [
      f for f in factors if f != "optimiser"]
  # The same comparison on ARAL's classifier and schedule is matched.
  matched = _claim((a, claims_lib.VAAL), claims_lib.paired_aulc("aral", "vaal@aral"))
  by = {c.method: c for c in reproduce.build_configs([matched], "fashion_mnist", "cpu", [0])}
  assert claims_lib.confounds(matched, by) == []


@pytest.mark.parametrize("dataset", ["fashion_mnist", "digits"])
def test_every_registered_comparison_is_matched(dataset):
  claims = claims_lib.get_claims(["all"], dataset)
  by = {c.method: c for c in reproduce.build_configs(claims, dataset, "cpu", [0])}
  assert {c.name: claims_lib.confounds(c, by) for c in claims} == {c.name: [] for c in claims}
  # The supervised FixMatch baseline has FixMatch's labeled batch, steps, optimiser and model;
  # its schedule is FixMatch's per-epoch rates (test below).
  for section in ("train", "optim", "model"):
    f, s = by["random_fixmatch"][section].to_dict(), by["random@fixmatch"][section].to_dict()
    f.pop("unlabeled_batch_size", None), s.pop("unlabeled_batch_size", None)
    if section == "optim":
      assert (f.pop("schedule"), s.pop("schedule")) == ("constant", "cosine_7_16")
    assert f == s, section


def test_the_supervised_fixmatch_member_trains_at_fixmatchs_rates():
  """FixMatch's objective sets cos(7πe/16E) × its constant rate at each epoch e; the supervised
  member's `cosine_7_16` schedule gives the same rate at every epoch (before, it trained at the
  undecayed rate throughout)."""
  from al_jax import loop, optim
  claim = next(c for c in claims_lib.CLAIMS if c.name == "fixmatch_beats_supervised")
  by = {c.method: c for c in reproduce.build_configs([claim], "digits", "cpu", [0])}
  fm, sup = by["random_fixmatch"], by["random@fixmatch"]
  learner = loop.ActiveLearner(fm, log=lambda s: None)
  obj = learner.objective
  state = obj.init(jax.random.PRNGKey(0), learner.x_train[:1])
  epochs = fm.train.epochs
  got = [float(obj.start_epoch(state, e).opt_state.hyperparams["learning_rate"])
         for e in range(epochs)]
  want = [optim.lr_at_epoch(sup.optim, e, sup.train.epochs) for e in range(epochs)]
  np.testing.assert_allclose(got, want, rtol=1e-6)
  base = float(fm.optim.lr)  # and both are kekmodel's cos(7πe/16E) × the constant rate
  np.testing.assert_allclose(want, [base * np.cos(7 * np.pi * e / (16 * epochs))
                                    for e in range(epochs)], rtol=1e-6)


def test_a_member_below_the_linear_probe_floor_withholds_the_verdict(tmp_path):
  a = _run(tmp_path, "a", [[0] * 10, [0] * 20], [0.60, 0.80])
  b = _run(tmp_path, "b", [[0] * 10, [0] * 20], [0.70, 0.75])
  runs = {"a": {0: a}, "b": {0: b}}
  members = (claims_lib._m("a", "random"), claims_lib._m("b", "random"))
  claim = _claim(members, claims_lib.paired_aulc("a", "b"))
  floors = {10: [0.65, 0.67], 20: [0.70, 0.72]}
  assert claims_lib.below_floor(claim, runs, floors) == [
      "a below the floor at 10 labels (0.600 vs probe 0.660)"]
  assert claims_lib.below_floor(claim, runs, {10: [0.5], 20: [0.5]}) == []
  # A claim reading only cycle 1 does not look at cycle 0.
  at1 = _claim(members, claims_lib.paired_accuracy_at("a", "b", 1))
  assert claims_lib.below_floor(at1, runs, floors) == []
  # A diagnostic claim reads no accuracy.
  diag = _claim(members[:1], claims_lib.diagnostic_mean("a", "test", "auroc_incorrect", 0.5))
  assert claims_lib.below_floor(diag, runs, floors) == []


def test_proposition_2_premise_is_checked_per_query_and_controls_are_shown(tmp_path):
  pools = [[0, 1], [0, 1, 2, 3], [0, 1, 2, 3, 14, 5]]   # clean: 14 ≢ any earlier image
  full = [{"kernel_rank": 4, "kernel_size": 4}, {"kernel_rank": 6, "kernel_size": 6}]
  short = [{"kernel_rank": 4, "kernel_size": 4}, {"kernel_rank": 5, "kernel_size": 6}]
  literal = _run(tmp_path, "lit", [[0, 1], [0, 1, 11, 3]], [0.5] * 2)      # 11 ≡ 1
  stat = claims_lib.degenerate_queries("crc", 2, ("lit",))
  held = stat({"crc": {0: _run(tmp_path, "a", pools, [0.5] * 3, selection=full),
                       1: _run(tmp_path, "b", pools, [0.5] * 3, selection=full)},
               "lit": {0: literal}})
  assert held.premise is None and "lit: 1 of 2" in held.context
  assert claims_lib.decide(held)[0] == claims_lib.HOLDS
  failed = stat({"crc": {0: _run(tmp_path, "c", pools, [0.5] * 3, selection=full),
                         1: _run(tmp_path, "d", pools, [0.5] * 3, selection=short)}})
  assert "kernel rank < L + G at 1 of 4 queries (5 < 6)" in failed.premise
  assert claims_lib.decide(failed) == (claims_lib.PREMISE_NOT_MET, [])
  assert claims_lib.p_value(failed) is None
  unrecorded = stat({"crc": {0: _run(tmp_path, "e", pools, [0.5] * 3),
                             1: _run(tmp_path, "f", pools, [0.5] * 3)}})
  assert "do not record the kernel rank" in unrecorded.premise


def test_correlations_are_decided_on_fisher_z():
  # ρ near 1 with spread: the plain t-interval would pass +1, Fisher's z stays inside.
  rho = np.array([[0.90], [0.80], [0.95], [0.99]])
  meas = M(rho, ["cycle 1"], 0.0, transform="fisher_z")
  m, lo, hi = claims_lib.interval(meas, 0)
  plain_hi = claims_lib.t_interval(rho[:, 0])[0] + claims_lib.t_interval(rho[:, 0])[1]
  assert plain_hi > 1 and -1 < lo < m < hi < 1
  assert m == pytest.approx(np.tanh(np.mean(np.arctanh(rho))))
  # The decision follows the z interval: here it straddles 0.9, so inconclusive at 0.9.
  assert claims_lib.decide(M(rho, ["c"], 0.9, transform="fisher_z"))[0] == (
      claims_lib.INCONCLUSIVE)
  assert claims_lib.decide(meas)[0] == claims_lib.HOLDS


def test_tod_loss_bins_trend_reads_figure_5():
  # Bins are in descending score: a loss falling along them is COD ↔ loss rising (ρ = +1).
  assert claims_lib._bin_trend([5, 4, 3, 2, 1]) == pytest.approx(1.0)
  assert claims_lib._bin_trend([1, 2, 3, 4, 5]) == pytest.approx(-1.0)


def test_tod_figure_6_topk_reads_the_recall_of_the_highest_losses():
  # Fig. 6's quantity: the share of the top-k% losses among the top-k% scores, averaged over
  # the recorded k; the claim is COD's minus LL4AL's module's on the same test points.
  report = {"score": {"top_k": {"0.01": 0.1, "0.05": 0.2, "0.1": 0.3, "0.2": 0.4}}}
  assert claims_lib._diag_value(report, "score", "top_k_mean") == pytest.approx(0.25)

  class R:  # a run whose test-set diagnostics have the given recall at every cycle
    def __init__(self, recall):
      self.rows = [{}, {}, {}]
      self.recall = recall

    def diagnostics(self, c):
      return {"test": {"score": {"top_k": {"0.1": self.recall + c / 100}}}}
  runs = {"tod": {0: R(0.5), 1: R(0.6)}, "ll4al@tod": {0: R(0.3), 1: R(0.2)}}
  meas = claims_lib.paired_diagnostic("tod", "ll4al@tod", "top_k_mean", first_cycle=1)(runs)
  np.testing.assert_allclose(meas.values, [[0.2, 0.2], [0.4, 0.4]])
  claim = next(c for c in claims_lib.CLAIMS if c.name == "tod_cod_topk_beats_ll4al")
  assert claim.source == "§5.1, Fig. 6" and claim.members[1].label == "ll4al@tod"


def test_background_claims_stay_out_of_the_family():
  background = [c for c in claims_lib.CLAIMS if c.kind == "background"]
  assert {c.name for c in background} == {"mean_teacher_beats_supervised",
                                          "fixmatch_beats_supervised"}
  assert all("CRC" not in c.paper.split(" ")[0] for c in background)
