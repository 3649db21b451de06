"""The papers' checkable claims, as data: what each says, the study it needs, how it is decided.

A `Claim` names its paper and the figure, table or proposition it comes from, states what the
paper claims, lists the study `Member`s it needs (a method under a setting), and gives the
statistic that measures it on finished runs. `experiments.reproduce` runs the union of the
members of the chosen claims as one study (every member on the same seeds, so the paired
members of a seed share their initial pool) and decides each claim from per-seed values:

* mean over seeds with a 95% Student-t interval;
* **holds** when the whole interval lies beyond the claim's threshold in the claimed
  direction, **does not hold** when it lies entirely on the other side, **inconclusive** when
  it straddles the threshold (or there is one seed only);
* a claim measured at several cycles (TOD's "at every cycle") holds when every cycle holds,
  does not hold when any cycle does not, and is inconclusive otherwise;
* an exact claim (CRC's Proposition 2: no degenerate query) holds when no seed violates it.

To add a claim, append a `Claim` to `CLAIMS`; its members are ordinary methods of
`al_jax.methods` run under the chosen preset, with a protocol and/or config overrides.
"""

import dataclasses
import json
import math
import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"
# Verdicts withheld because the measurement cannot be evidence for the claim:
NOT_MEASURED = "not measured"          # no data, too few seeds, or a member below the floor
PREMISE_NOT_MET = "premise not met"    # the claim's own premise fails in this setting
CONFOUNDED = "confounded"              # the members differ in more than what is compared
WITHHELD = (NOT_MEASURED, PREMISE_NOT_MET, CONFOUNDED)
MIN_SEEDS = 2  # an interval, and so a verdict, needs at least two seeds


@dataclasses.dataclass(frozen=True)
class Member:
  """One study member: a method under a setting, with a name unique in the ledger.

  Attributes:
    label: the member's name (its run directory and its `method` column in the results).
    method: the `al_jax.methods` preset it runs.
    protocol: a paper's schedule (`experiments/configs/protocols.py`), or "".
    overrides: (dotted config key, value) pairs applied after the preset and protocol.
    schedule_of: a method whose preset's pool, schedule, optimiser and model the member
      takes (its `al`, `train`, `optim` and `model` sections), or "".
  """
  label: str
  method: str
  protocol: str = ""
  overrides: Tuple[Tuple[str, object], ...] = ()
  schedule_of: str = ""


@dataclasses.dataclass
class Run:
  """A finished member run: its rows (one per cycle) and its workdir."""
  rows: List[Dict]
  path: str

  @property
  def labels(self) -> np.ndarray:
    return np.array([r["num_labeled"] for r in self.rows], float)

  def column(self, key: str) -> np.ndarray:
    return np.array([r[key] for r in self.rows], float)

  def aulc(self) -> float:
    from experiments.report import aulc
    return aulc(self.labels, self.column("test_accuracy"))

  def diagnostics(self, cycle: int) -> Dict:
    path = os.path.join(self.path, "diagnostics", f"cycle_{cycle}.json")
    if not os.path.exists(path):
      raise FileNotFoundError(f"{path} is missing: the member must run with diagnostics")
    with open(path) as f:
      return json.load(f)

  def pool(self, cycle: int) -> np.ndarray:
    return np.load(os.path.join(self.path, "pools", f"cycle_{cycle}.npy"))


# label → seed → Run
Runs = Dict[str, Dict[int, Run]]


@dataclasses.dataclass
class Measurement:
  """Per-seed values of a claim's statistic and how to decide them.

  Attributes:
    values: [seeds, parts]; a part is one cycle of an "at every cycle" claim, else 1 part.
    parts: a name per part (e.g. "cycle 1").
    threshold: the value the claim is compared against.
    greater: True when the claim is `value > threshold`, False for `value < threshold`.
    exact: the claim must hold on every seed (no interval): `values` counts violations.
    note: a sentence on how the value was computed, shown in the ledger.
    checked: for an exact claim, how many cases (e.g. queried images) each seed checked.
    premise: why the claim's premise fails where it was measured (verdict PREMISE_NOT_MET),
      or None when it holds.
    transform: "fisher_z" decides a correlation on arctanh(ρ) (Fisher 1915), where the
      t-interval's normal approximation is good, and shows the interval back in ρ units
      (a Spearman interval cannot then pass ±1); "" decides the values as they are.
    context: controls measured beside the statistic (e.g. a random control's count), shown
      next to the value so a reader sees what the test can detect.
    points: under "fisher_z", how many points each Spearman ρ was computed on (0: many).
      arctanh(±1) = ±∞, and on few points ρ = 1 is common (10 bins: a perfectly ordered
      trend), so |ρ| is capped at the largest Spearman value below 1 on that many points,
      1 − 12/(n(n² − 1)) (0.988 for n = 10), rather than at 1 − 1e-12 (z = 14.2, which made
      one perfect seed swamp the others).
  """
  values: np.ndarray
  parts: Sequence[str]
  threshold: float
  greater: bool = True
  exact: bool = False
  note: str = ""
  checked: Optional[Sequence[int]] = None
  premise: Optional[str] = None
  transform: str = ""
  context: str = ""
  points: int = 0


@dataclasses.dataclass(frozen=True)
class Claim:
  """A paper's checkable claim.

  Attributes:
    name: short identifier (`--claims=`).
    paper: the paper.
    source: the figure, table, equation or proposition the claim comes from.
    statement: what the paper claims, in one sentence.
    members: the study members the claim needs.
    statistic: finished runs → `Measurement`.
    unit: what the measured value is (e.g. "Δ AULC").
    datasets: datasets the claim's setting exists for (empty: every dataset).
    plot: "accuracy" (the members' learning curves) or a diagnostics key to plot per cycle.
    kind: "paper" (a claim the paper makes, where it makes it) or "background" (a claim of
      the papers a method builds on, e.g. that Mean Teacher beats supervised training: shown
      for context, outside the family-wise decision).
  """
  name: str
  paper: str
  source: str
  statement: str
  members: Tuple[Member, ...]
  statistic: Callable[[Runs], Measurement]
  unit: str
  datasets: Tuple[str, ...] = ()
  plot: str = "accuracy"
  kind: str = "paper"
  allowed: Tuple[Tuple[str, str], ...] = ()


def t_interval(values: np.ndarray) -> Tuple[float, float]:
  """Mean and half-width of the 95% Student-t interval over axis 0 (nan for one value)."""
  from scipy import stats
  values = np.asarray(values, float)
  n = len(values)
  m = float(values.mean())
  if n < 2:
    return m, float("nan")
  return m, float(stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / math.sqrt(n))


def why_not_measured(meas: Measurement) -> Optional[str]:
  """Why `meas` cannot decide its claim (no part, too few seeds, nothing checked), or None."""
  values = np.asarray(meas.values, float)
  if values.ndim != 2 or values.shape[1] == 0 or not len(meas.parts):
    return "the statistic has no part to decide"
  if values.shape[1] != len(meas.parts):
    return f"{values.shape[1]} values per seed for {len(meas.parts)} parts"
  if values.shape[0] < MIN_SEEDS:
    return f"{values.shape[0]} seed(s); a verdict needs ≥ {MIN_SEEDS}"
  if not np.all(np.isfinite(values)):
    return "a per-seed value is not finite"
  if meas.exact and (meas.checked is None or not np.all(np.asarray(meas.checked) > 0)):
    return "an exact claim with a seed that checked no case"
  return None


def _decision_values(meas: Measurement) -> Tuple[np.ndarray, float]:
  """[seeds, parts] values and threshold on the scale the claim is decided on."""
  values = np.asarray(meas.values, float).reshape(len(meas.values), -1)
  if meas.transform == "fisher_z":
    n = meas.points
    cap = 1 - 12 / (n * (n * n - 1)) if n >= 3 else 1 - 1e-12
    z = lambda r: np.arctanh(np.clip(r, -cap, cap))
    return z(values), float(z(meas.threshold))
  return values, float(meas.threshold)


def interval(meas: Measurement, j: int) -> Tuple[float, float, float]:
  """(mean, low, high) of part `j`'s 95% interval in the claim's units (nan bounds with one
  seed); under "fisher_z" the t-interval of arctanh(ρ), mapped back by tanh."""
  values, _ = _decision_values(meas)
  m, h = t_interval(values[:, j])
  if meas.transform == "fisher_z":
    return float(np.tanh(m)), float(np.tanh(m - h)), float(np.tanh(m + h))
  return m, m - h, m + h


def decide(meas: Measurement) -> Tuple[str, List[Tuple[str, float, float, str]]]:
  """The claim's verdict and, per part, (part, mean, half-width, part verdict); NOT_MEASURED
  with no parts when `why_not_measured` has a reason (never "holds" without data), and
  PREMISE_NOT_MET with no parts when the measurement says the claim's premise fails. Under
  "fisher_z" the mean and half-width are those of arctanh(ρ) (`interval` gives ρ units)."""
  if why_not_measured(meas) is not None:
    return NOT_MEASURED, []
  if meas.premise:
    return PREMISE_NOT_MET, []
  values, threshold = _decision_values(meas)
  rows = []
  for j, part in enumerate(meas.parts):
    m, h = t_interval(values[:, j])
    if meas.exact:
      verdict = HOLDS if np.all(values[:, j] == 0) else FAILS
    elif not math.isfinite(h):
      verdict = INCONCLUSIVE
    else:
      lo, hi = m - h, m + h
      above, below = lo > threshold, hi < threshold
      if meas.greater:
        verdict = HOLDS if above else FAILS if below else INCONCLUSIVE
      else:
        verdict = HOLDS if below else FAILS if above else INCONCLUSIVE
    rows.append((part, m, h, verdict))
  verdicts = {r[3] for r in rows}
  overall = FAILS if FAILS in verdicts else INCONCLUSIVE if INCONCLUSIVE in verdicts else HOLDS
  return overall, rows


def p_value(meas: Measurement) -> Optional[float]:
  """One-sided p-value of the claim's direction (Student t over seeds, H0: value on the wrong
  side of the threshold or at it); for an "at every cycle" claim the largest over its parts
  (intersection–union test: every part must reject). None for an exact claim or one that is
  not measured."""
  from scipy import stats
  if meas.exact or meas.premise or why_not_measured(meas) is not None:
    return None
  values, threshold = _decision_values(meas)
  out = 0.0
  for j in range(values.shape[1]):
    d = values[:, j] - threshold
    sd = d.std(ddof=1)
    if sd == 0:
      p = 0.0 if (d.mean() > 0) == meas.greater and d.mean() != 0 else 1.0
    else:
      t = d.mean() / (sd / math.sqrt(len(d)))
      p = float(stats.t.sf(t if meas.greater else -t, len(d) - 1))
    out = max(out, p)
  return out


# The family-wise level on one-sided p-values: 0.025 is the two-sided 5% of the per-claim
# 95% interval ("holds" ⇔ one-sided p < 0.025), so a family of one claim survives exactly
# when it holds, and no claim can survive while its own interval says inconclusive.
HOLM_ALPHA = 0.025


def holm(pvalues: Dict[str, Optional[float]], alpha: float = HOLM_ALPHA) -> Dict[str, bool]:
  """Holm–Bonferroni over the family: name → whether its claim survives at level `alpha`
  (p_(i) ≤ α / (m − i + 1) for it and every smaller p). Claims without a p-value are not in
  the family and do not survive."""
  family = sorted((p, n) for n, p in pvalues.items() if p is not None)
  m = len(family)
  out = {n: False for n in pvalues}
  for i, (p, n) in enumerate(family):
    if p > alpha / (m - i):
      break
    out[n] = True
  return out


# --- statistics ----------------------------------------------------------------------------
def _seeds(runs: Runs, *labels: str) -> List[int]:
  """Seeds every one of `labels` finished (the paired design: same seed, same pool)."""
  common = set.intersection(*(set(runs.get(l, {})) for l in labels))
  if not common:
    raise ValueError(f"no seed has finished runs of all of {', '.join(labels)}")
  return sorted(common)


def _tag(stat, compared: Sequence[str] = (), accuracy_cycles=None,
         varies: Sequence[str] = (), labels: Sequence[str] = ()):
  """What the ledger checks before it decides: `compared` members must differ only in what
  the claim compares (else *confounded*), where `varies` lists settings of the FACTORS the
  claim itself compares (e.g. al.budget for "Q = 20 vs Q = 100"); members whose accuracy the
  statistic reads, at `accuracy_cycles` (None: every cycle; a dict: per member label), must
  learn above the linear-probe floor (else *not measured*). `labels`: the members whose runs
  the statistic reads (default: `compared`)."""
  stat.compared = tuple(compared)
  stat.accuracy_cycles = accuracy_cycles
  stat.varies = tuple(varies)
  stat.labels = tuple(labels or compared)
  return stat


def paired_aulc(a: str, b: str) -> Callable[[Runs], Measurement]:
  """AULC(a) − AULC(b) per seed; the claim is that it is > 0."""
  def stat(runs: Runs) -> Measurement:
    seeds = _seeds(runs, a, b)
    v = [[runs[a][s].aulc() - runs[b][s].aulc()] for s in seeds]
    return Measurement(np.array(v), ["all cycles"], 0.0,
                       note=f"AULC({a}) − AULC({b}), paired by seed")
  return _tag(stat, (a, b))


def paired_accuracy_at_labels(a: str, b: str, cycle_a: int,
                              cycle_b: int) -> Callable[[Runs], Measurement]:
  """Test accuracy of a at its cycle `cycle_a` − b at its `cycle_b`, which must have the
  same number of labels (e.g. Q = 20 after 5 queries vs Q = 100 after one), per seed."""
  def stat(runs: Runs) -> Measurement:
    seeds = _seeds(runs, a, b)
    ra, rb = runs[a][seeds[0]].rows[cycle_a], runs[b][seeds[0]].rows[cycle_b]
    if ra["num_labeled"] != rb["num_labeled"]:
      raise ValueError(f"{a} cycle {cycle_a} has {ra['num_labeled']} labels, {b} cycle "
                       f"{cycle_b} {rb['num_labeled']}: the comparison needs equal labels")
    v = [[runs[a][s].rows[cycle_a]["test_accuracy"] - runs[b][s].rows[cycle_b]["test_accuracy"]]
         for s in seeds]
    return Measurement(np.array(v), [f"{ra['num_labeled']} labels"], 0.0,
                       note=f"test accuracy of {a} − {b} at {ra['num_labeled']} labels, "
                       "paired by seed")
  # The two members differ in Q (and so in their cycle count) and nothing else.
  return _tag(stat, (a, b), {a: (cycle_a,), b: (cycle_b,)}, varies=("al.budget", "al.cycles"))


def difference_of_differences(stat_a, stat_b, what: str) -> Callable[[Runs], Measurement]:
  """stat_a − stat_b per seed (two one-part paired statistics): e.g. how much more CRC gains
  from a smaller Q than entropy does."""
  labels = tuple(dict.fromkeys(stat_a.labels + stat_b.labels))

  def stat(runs: Runs) -> Measurement:
    # Both differences on the seeds all four members finished, so row k of each is seed k.
    seeds = _seeds(runs, *labels)
    paired = {l: {s: runs[l][s] for s in seeds} for l in labels}
    ma, mb = stat_a(paired), stat_b(paired)
    return Measurement(ma.values - mb.values, list(ma.parts), 0.0,
                       note=f"{what}: ({ma.note}) − ({mb.note})")
  # Per-member cycles where both inner statistics name them, else every cycle.
  cycles = ({**stat_a.accuracy_cycles, **stat_b.accuracy_cycles}
            if isinstance(stat_a.accuracy_cycles, dict)
            and isinstance(stat_b.accuracy_cycles, dict) else None)
  return _tag(stat, labels, cycles, varies=tuple(dict.fromkeys(stat_a.varies + stat_b.varies)))


def paired_accuracy_at(a: str, b: str, cycle: int = 0) -> Callable[[Runs], Measurement]:
  """Test accuracy of a − b at one cycle (cycle 0: the fewest labels), per seed."""
  def stat(runs: Runs) -> Measurement:
    seeds = _seeds(runs, a, b)
    v = [[runs[a][s].rows[cycle]["test_accuracy"] - runs[b][s].rows[cycle]["test_accuracy"]]
         for s in seeds]
    n = runs[a][seeds[0]].rows[cycle]["num_labeled"]
    return Measurement(np.array(v), [f"{n} labels"], 0.0,
                       note=f"test accuracy of {a} − {b} at cycle {cycle}, paired by seed")
  return _tag(stat, (a, b), (cycle,))


def paired_mean_ece(lower: str, higher: str) -> Callable[[Runs], Measurement]:
  """Mean over cycles of ECE(higher) − ECE(lower); the claim: > 0. The two members must
  label the same images (e.g. both select at random), which is checked."""
  def stat(runs: Runs) -> Measurement:
    seeds = _seeds(runs, lower, higher)
    v = []
    for s in seeds:
      a, b = runs[lower][s], runs[higher][s]
      k = min(len(a.rows), len(b.rows))
      for c in range(k):
        if not np.array_equal(np.sort(a.pool(c)), np.sort(b.pool(c))):
          raise ValueError(f"{lower} and {higher} labeled different images at seed {s}, "
                           f"cycle {c}: the ECE comparison needs equal labels")
      v.append([float(np.mean(b.column("test_ece")[:k] - a.column("test_ece")[:k]))])
    return Measurement(np.array(v), ["mean over cycles"], 0.0,
                       note=f"ECE({higher}) − ECE({lower}) on identical labeled sets")
  return _tag(stat, (lower, higher), ())


def _bin_trend(bins: Sequence[float]) -> float:
  """Spearman ρ between score rank and mean loss over the 10 score bins (bins are in
  descending score, so ρ > 0 when a larger score goes with a larger loss: TOD Fig. 5)."""
  from al_jax.diagnostics import spearman
  bins = np.asarray(bins, float)
  return float(spearman(-np.arange(len(bins), dtype=float), bins))


def _diag_value(report: Dict, scorer: str, key: str) -> float:
  if key == "bin_trend":
    return _bin_trend(report[scorer]["loss_by_score_bin"])
  if key == "top_k_mean":  # TOD Fig. 6's recall curve at its recorded fractions, averaged
    return float(np.mean(list(report[scorer]["top_k"].values())))
  return report[scorer][key]


def _diagnostics(runs: Runs, label: str, split: str, key: str, first_cycle: int):
  """(cycles, [seeds, cycles] values of the acquisition score, [cycles] mean of least
  confidence's same statistic on the same points) of one member's diagnostics."""
  seeds = _seeds(runs, label)
  k = min(len(runs[label][s].rows) for s in seeds)
  cycles = list(range(first_cycle, k))
  reports = [[runs[label][s].diagnostics(c)[split] for c in cycles] for s in seeds]
  v = np.array([[_diag_value(r, "score", key) for r in row] for row in reports], float)
  # Least confidence (1 − max softmax) on the same points: a reference for the score.
  ref = np.array([[_diag_value(r, "least_confidence", key) for r in row]
                  for row in reports]).mean(0)
  return cycles, v, ref


def diagnostic_per_cycle(label: str, split: str, key: str, threshold: float,
                         first_cycle: int = 0) -> Callable[[Runs], Measurement]:
  """A loss-estimation diagnostic (al_jax.diagnostics) at each cycle ≥ first_cycle; a
  correlation ("spearman", "bin_trend") is decided on Fisher's z."""
  def stat(runs: Runs) -> Measurement:
    cycles, v, ref = _diagnostics(runs, label, split, key, first_cycle)
    points = 0
    if key == "bin_trend" and cycles:  # ρ over the score bins, not over the probe's points
      run = runs[label][_seeds(runs, label)[0]]
      points = len(run.diagnostics(cycles[0])[split]["score"]["loss_by_score_bin"])
    return Measurement(v, [f"cycle {c}" for c in cycles], threshold, points=points,
                       transform="fisher_z" if key in ("spearman", "bin_trend") else "",
                       note=f"{key} of the acquisition score on the {split} "
                       f"{'probe' if split == 'unlabeled' else 'set'}, per cycle",
                       context="least confidence on the same points: " + ", ".join(
                           f"{x:.3f}" for x in ref))
  return _tag(stat, (), ())


def diagnostic_mean(label: str, split: str, key: str,
                    threshold: float) -> Callable[[Runs], Measurement]:
  """A loss-estimation diagnostic averaged over the run's cycles, per seed."""
  def stat(runs: Runs) -> Measurement:
    _, v, ref = _diagnostics(runs, label, split, key, 0)
    return Measurement(v.mean(1, keepdims=True), ["mean over cycles"], threshold,
                       note=f"{key} of the acquisition score on the {split} "
                       f"{'probe' if split == 'unlabeled' else 'set'}, mean over cycles",
                       context=f"least confidence on the same points: {np.mean(ref):.3f}")
  return _tag(stat, (), ())


def paired_diagnostic(a: str, b: str, key: str,
                      first_cycle: int = 0) -> Callable[[Runs], Measurement]:
  """A's score vs B's on the *test set* (the same points for both members, every cycle):
  per cycle, Fisher z(ρ_a) − z(ρ_b) for a correlation, else the plain difference."""
  def stat(runs: Runs) -> Measurement:
    seeds = _seeds(runs, a, b)
    k = min(len(runs[m][s].rows) for m in (a, b) for s in seeds)
    cycles = list(range(first_cycle, k))
    z = (lambda r: np.arctanh(np.clip(r, -1 + 1e-12, 1 - 1e-12))) if key == "spearman" \
        else (lambda r: r)
    get = lambda m, s, c: _diag_value(runs[m][s].diagnostics(c)["test"], "score", key)
    v = [[z(get(a, s, c)) - z(get(b, s, c)) for c in cycles] for s in seeds]
    mean = lambda m: ", ".join(f"{np.mean([get(m, s, c) for s in seeds]):.3f}" for c in cycles)
    return Measurement(np.array(v, float), [f"cycle {c}" for c in cycles], 0.0,
                       note=f"{'Fisher z of ' if key == 'spearman' else ''}{key} of {a}'s "
                       f"score − {b}'s on the test set, per cycle, paired by seed",
                       context=f"{key} per cycle: {a} {mean(a)}; {b} {mean(b)}")
  return _tag(stat, (a, b), ())


def _degenerate_counts(run: Run, copies: int) -> Tuple[int, int, List[Tuple[int, int]]]:
  """(degenerate picks, queried images, [(kernel rank, L + G) per query]) of one run."""
  n = run.rows[0]["pool_size"] // copies
  bad = queried = 0
  ranks = []
  for c in range(len(run.rows) - 1):
    before, after = run.pool(c), run.pool(c + 1)
    seen = set((before % n).tolist())
    for i in np.setdiff1d(after, before):
      bad += int(i % n in seen)
      queried += 1
      seen.add(int(i % n))
    info = run.rows[c].get("selection") or {}
    if "kernel_rank" in info:
      ranks.append((int(info["kernel_rank"]), int(info["kernel_size"])))
  return bad, queried, ranks


def degenerate_queries(label: str, copies: int,
                       controls: Sequence[str] = ()) -> Callable[[Runs], Measurement]:
  """Images a run queried although an identical copy was already labeled or queried with it.

  On a pool holding every training image `copies` times (`al.pool_copies`), index i and
  i + k·N are the same image. Counts, over all queries of the run, the selected indices whose
  image was already in the labeled set or selected earlier in the same query.

  Proposition 2's premise is that a non-degenerate choice has a full-rank kernel: CRC
  records, per query, the largest kernel rank among its candidate groups and L + G
  (`row["selection"]`); a query where no group reaches L + G cannot tell a degenerate group
  from a clean one, and the claim is then PREMISE_NOT_MET. The `controls` (e.g. random
  selection and the literal λ⁺_min rule on the same pool) are counted the same way and shown
  beside it, so the row says whether this setting can detect a degenerate pick at all.
  """
  def stat(runs: Runs) -> Measurement:
    seeds = _seeds(runs, label)
    v, checked, short, total, missing = [], [], [], 0, 0
    for s in seeds:
      bad, queried, ranks = _degenerate_counts(runs[label][s], copies)
      v.append([bad])
      checked.append(queried)
      missing += len(runs[label][s].rows) - 1 - len(ranks)
      total += len(ranks)
      short += [f"{r} < {k}" for r, k in ranks if r < k]
    premise = None
    if missing:
      premise = (f"{missing} queries do not record the kernel rank, so the premise (a "
                 "full-rank non-degenerate choice) is unchecked")
    elif short:
      premise = (f"kernel rank < L + G at {len(short)} of {total} queries "
                 f"({', '.join(short[:3])}): degenerate and clean groups tie")
    ctx = []
    for c in controls:
      counts = [_degenerate_counts(runs[c][s], copies)[:2] for s in sorted(runs.get(c, {}))]
      ctx.append(f"{c}: " + (", ".join(f"{b} of {q}" for b, q in counts) if counts
                             else "no finished run"))
    return Measurement(np.array(v, float), ["all queries"], 0.0, exact=True,
                       note=f"degenerate picks on a pool of {copies} copies of each image; "
                       f"kernel rank = L + G at every one of the {total} queries checked"
                       if premise is None else f"degenerate picks on a pool of {copies} "
                       "copies of each image", checked=checked, premise=premise,
                       context="; ".join(ctx))
  return _tag(stat, (), ())


# --- premises: matched members, learning above the floor -----------------------------------
# What two compared members must share, by factor: the classifier, how it is optimised, how
# long and on what batches it trains, its augmentation and its labels. What a claim compares
# (the objective, the acquisition and their settings, the unlabeled batch) is not listed.
FACTORS: Dict[str, Tuple[str, ...]] = {
    "model": ("model.name", "model.kwargs"),
    "optimiser": ("optim",),
    "schedule": ("train.batch_size", "train.epochs", "train.min_steps_per_epoch",
                 "train.warm_start", "train.early_stopping", "train.initial_trials"),
    "augmentation": ("train.augment", "train.flip", "train.crop_pad"),
    "labels": ("al.initial", "al.budget", "al.cycles", "al.subset", "al.class_balanced",
               "al.val_size", "al.pool_copies"),
}


def _get(config, dotted: str):
  node = config
  for k in dotted.split("."):
    node = node[k]
  return node.to_dict() if hasattr(node, "to_dict") else node


def confounds(claim: Claim, configs_by_label: Dict) -> List[str]:
  """The factors in which the claim's compared members differ beyond what it compares (and
  beyond its declared `allowed` factors), each with the differing values; [] when matched.
  A claim that reads one cycle compares the members' settings of the cycles it reads."""
  compared = getattr(claim.statistic, "compared", ())
  if len(compared) < 2:
    return []
  allowed = {f for f, _ in claim.allowed}
  varies = set(getattr(claim.statistic, "varies", ()))
  out = []
  for factor, keys in FACTORS.items():
    if factor in allowed:
      continue
    diffs = []
    for key in keys:
      if key in varies:
        continue  # what the claim compares
      if key == "al.cycles" and getattr(claim.statistic, "accuracy_cycles", None):
        continue  # "at few labels": only the cycles read matter, and they exist in both
      vals = [_get(configs_by_label[m], key) for m in compared]
      if any(v != vals[0] for v in vals[1:]):
        diffs.append(f"{key} " + " vs ".join(repr(v) for v in vals))
    if diffs:
      out.append(f"{factor} ({'; '.join(diffs)})")
  return out


def below_floor(claim: Claim, runs: Runs, floors: Dict[int, Sequence[float]]) -> List[str]:
  """Members whose mean test accuracy over seeds, at a cycle the statistic reads, is below
  the linear-probe floor at the same number of labels (`experiments/floors.py`: logistic
  regression on the raw pixels, mean over the ledger's seeds): "<member> below the floor at
  N labels (0.657 vs probe 0.683)". `floors` maps a label count to the probe's accuracy per
  seed; a label count without a floor cannot show that the member learns, so it withholds
  the verdict too ("no linear-probe floor at N labels")."""
  cycles = getattr(claim.statistic, "accuracy_cycles", None)
  if cycles == ():
    return []
  out = []
  for m in claim.members:
    seeds = sorted(runs.get(m.label, {}))
    if not seeds:
      continue
    mine = cycles.get(m.label, ()) if isinstance(cycles, dict) else cycles
    k = min(len(runs[m.label][s].rows) for s in seeds)
    for c in (range(k) if mine is None else [c for c in mine if c < k]):
      n = int(runs[m.label][seeds[0]].rows[c]["num_labeled"])
      if n not in floors:
        out.append(f"no linear-probe floor at {n} labels to check {m.label} against "
                   "(the probe could not run)")
        break
      acc = float(np.mean([runs[m.label][s].rows[c]["test_accuracy"] for s in seeds]))
      probe = float(np.mean(floors[n]))
      if acc < probe:
        out.append(f"{m.label} below the floor at {n} labels ({acc:.3f} vs probe "
                   f"{probe:.3f})")
        break
  return out


# --- the registry --------------------------------------------------------------------------
def _m(label, method, protocol="", schedule_of="", **overrides) -> Member:
  return Member(label, method, protocol, tuple(sorted(overrides.items())), schedule_of)


_DIAG = {"diagnostics": True}
TOD = _m("tod", "tod", "tod", **_DIAG)
RANDOM_TOD = _m("random@tod", "random", "tod")
TOD_SEMI = _m("tod_semi_only", "tod_semi_only", "tod")
TOD_ACTIVE = _m("tod_active_only", "tod_active_only", "tod")
# LL4AL's loss module under TOD's schedule, for TOD Fig. 6 (COD vs the learned loss).
LL4AL_TOD = _m("ll4al@tod", "ll4al", "tod", **_DIAG)
CRTCL = _m("crtcl", "crtcl", "crtcl", **_DIAG)
CRTCL_LOSS = _m("crtcl_loss_only", "crtcl_loss_only", "crtcl")
CRTCL_SELECT = _m("crtcl_select_only", "crtcl_select_only", "crtcl")
TOD_SELECT_CRTCL = _m("tod_active_only@crtcl", "tod_active_only", "crtcl")
RANDOM_CRTCL = _m("random@crtcl", "random", "crtcl")
LPLGRAD = _m("lplgrad", "lplgrad", "lplgrad")
LL4AL = _m("ll4al", "ll4al", "lplgrad")
ENTROPY_LPL = _m("entropy@lplgrad", "entropy", "lplgrad")
RANDOM_LPL = _m("random@lplgrad", "random", "lplgrad")
ENT_GRADNORM = _m("ent_gradnorm", "ent_gradnorm", "lplgrad")
CRC = _m("crc", "crc")
RANDOM_MT = _m("random_mt", "random_mt")
# CRC Table 4's regime (§4.3): Q₀ = 120 labels, Q = 20 per query, against Q = 100 at the
# same final label count (220), for CRC and for entropy (§4.3.2: only CRC gains from a
# smaller Q); every member trains with Mean Teacher.
_Q20 = {"al.initial": 120, "al.budget": 20, "al.cycles": 6}
_Q100 = {"al.initial": 120, "al.budget": 100, "al.cycles": 2}
# CRC's group size in its Mean Teacher setting is G = 20 (Table 4's caption "CRC used G = 20";
# App. B.1 "SVHN G = 20"), not the CIFAR rule G = Q/10 the presets derive: one group of 20 at
# Q = 20, five at Q = 100, so the Q = 20 vs Q = 100 claims compare Q alone.
CRC_Q20 = _m("crc@q20", "crc", **_Q20, **{"derive.group_fraction": 1.0})
RANDOM_Q20 = _m("random_mt@q20", "random_mt", **_Q20)
ENTROPY_Q20 = _m("entropy_mt@q20", "entropy_mt", **_Q20)
CRC_Q100 = _m("crc@q100", "crc", **_Q100, **{"derive.group_fraction": 0.2})
ENTROPY_Q100 = _m("entropy_mt@q100", "entropy_mt", **_Q100)
# Proposition 2 is about the queried set X_u*: CRC searches it as one group (G = Q), since
# with G < Q the Q/G best groups are scored independently and two of them may hold copies of
# one image. Its premise (a non-degenerate choice has a full-rank kernel) needs L + G below
# the last-layer eNTK's rank (≤ 129 on the small CNN: 128 features + bias): 20 labels and
# three queries of 20 check it at L + G = 40, 60 and 80. The literal λ⁺_min rule and random
# selection on the same repeated pool are the controls.
_REPEATED = {"al.pool_copies": 2, "al.initial": 20, "al.budget": 20, "al.cycles": 4}
CRC_REPEATED = _m("crc@repeated", "crc", **_REPEATED, **{"derive.group_fraction": 1.0})
CRC_REPEATED_LITERAL = _m("crc_literal@repeated", "crc", **_REPEATED, **{
    "derive.group_fraction": 1.0, "acquisition_kwargs.rank_aware": False})
RANDOM_REPEATED = _m("random_mt@repeated", "random_mt", **_REPEATED)
ARAL = _m("aral", "aral")
# VAAL on ARAL's classifier, schedule and optimiser, so the two differ only in ARAL's
# co-training and its sampler (the ledger's matched-members rule; ARAL §4's baselines only
# say that "VAAL trains the classifier separately only on the selected labeled images").
VAAL = _m("vaal@aral", "vaal", schedule_of="aral")
# Members of "at few labels" claims train only the first cycle (the claim reads cycle 0; a
# cycle's training does not depend on how many follow).
_FIRST = {"al.cycles": 1}
ARAL_LABELS = _m("aral_labels_only", "aral_labels_only", **_FIRST)
# ARAL Fig. 3's MNIST regime: 10 labels, 10 more per cycle; the baselines on ARAL's
# classifier at the labels-only learner's tuned optimiser.
_ARAL10 = {"al.initial": 10, "al.budget": 10, "al.cycles": 5}
ARAL10 = _m("aral@10", "aral", **_ARAL10)
ARAL10_NO_ENCODER = _m("aral_no_encoder@10", "aral_no_encoder", **_ARAL10)
ARAL10_RANDOM = _m("aral_labels_only@10", "aral_labels_only", **_ARAL10)
ARAL10_ENTROPY = _m("entropy@aral10", "entropy", schedule_of="aral_labels_only", **_ARAL10)
ARAL10_BALD = _m("bald@aral10", "bald", schedule_of="aral_labels_only", **_ARAL10)
_ARAL_OPTIM = (("optimiser", "ARAL's discriminator at its own Adam (§4.1, 3e-3, β₁ 0.5), the "
                "labels-only classifier at its tuned one (experiments.aral_claim --tune)"),)
FIXMATCH = _m("random_fixmatch", "random_fixmatch", **_FIRST)
# Supervised training on Mean Teacher's / FixMatch's preset schedule (class-balanced initial
# pool, the same labeled batch, steps, optimiser and model), so only the use of unlabeled
# data differs.
SUPERVISED_SSL = _m("random@ssl", "random", schedule_of="random_mt", **_FIRST)
# FixMatch's objective decays its rate per epoch by cos(7πe/16E) on a constant optimiser
# schedule; the supervised member gets the same rates as its optimiser's schedule.
SUPERVISED_FIXMATCH = _m("random@fixmatch", "random", schedule_of="random_fixmatch",
                         **_FIRST, **{"optim.schedule": "cosine_7_16"})
_FIXMATCH_RATES = (("optimiser", "the same per-epoch rates: cos(7πe/16E) applied by FixMatch's "
                    "objective on its constant schedule, and as the supervised member's schedule "
                    "(`cosine_7_16`)"),)

_MNIST_LIKE = ("digits", "mnist", "fashion_mnist")

def _beats(name: str, paper: str, source: str, statement: str, a: Member, b: Member,
           **kw) -> Claim:
  """"A beats B" in accuracy over the run: AULC(a) − AULC(b) > 0, paired by seed."""
  return Claim(name, paper, source, statement, (a, b), paired_aulc(a.label, b.label), "Δ AULC",
               **kw)


CLAIMS: Tuple[Claim, ...] = (
    # --- TOD ---------------------------------------------------------------------------------
    Claim("tod_cod_spearman", "TOD", "§5.1, Fig. 5",
          "The cyclic output discrepancy ranks unlabeled samples by their true loss: its "
          "Spearman correlation with the loss is positive at every cycle ≥ 1.",
          (TOD,), diagnostic_per_cycle("tod", "unlabeled", "spearman", 0.0, first_cycle=1),
          "Spearman ρ", plot="spearman"),
    Claim("tod_cod_loss_bins", "TOD", "§5.1, Fig. 5",
          "Samples with a larger COD have a larger loss: the mean loss rises with the COD "
          "bin (10 bins of 10% of the unlabeled probe; the figure's are 5% wide) at every "
          "cycle ≥ 1.",
          (TOD,), diagnostic_per_cycle("tod", "unlabeled", "bin_trend", 0.0, first_cycle=1),
          "ρ(COD bin, mean loss)", plot="bin_trend"),
    Claim("tod_cod_beats_ll4al", "TOD", "§5.1, Fig. 6",
          "COD estimates the loss better than LL4AL's loss-prediction module: a higher "
          "Spearman correlation with the true loss on the same (test) points, every cycle ≥ 1.",
          (TOD, LL4AL_TOD), paired_diagnostic("tod", "ll4al@tod", "spearman", first_cycle=1),
          "Δ Fisher z", plot="TOD − LL4AL, per seed"),
    Claim("tod_cod_topk_beats_ll4al", "TOD", "§5.1, Fig. 6",
          "COD finds more of the highest-loss points than LL4AL's module: Fig. 6's quantity, "
          "the share of the top-k% losses among the top-k% scores (mean over k = 1, 5, 10, "
          "20% of the test set), higher every cycle ≥ 1.",
          (TOD, LL4AL_TOD), paired_diagnostic("tod", "ll4al@tod", "top_k_mean", first_cycle=1),
          "Δ top-k recall", plot="TOD − LL4AL, per seed"),
    _beats("tod_beats_random", "TOD", "§5.2, Fig. 7 and Table 1",
           "TOD (COD selection + EMA consistency) beats random sampling.",
           TOD, RANDOM_TOD),
    _beats("tod_semi_beats_base", "TOD", "Table 1 (Base+Semi vs Base)",
           "The unsupervised EMA output-discrepancy loss alone (EMAOD, §5.4; random "
           "selection) beats the base model.",
           TOD_SEMI, RANDOM_TOD),
    _beats("tod_active_beats_base", "TOD", "Table 1 (Base+Active vs Base)",
           "COD selection alone (no unsupervised loss) beats random selection.",
           TOD_ACTIVE, RANDOM_TOD),
    # --- CrtCl -------------------------------------------------------------------------------
    _beats("crtcl_beats_random", "CrtCl", "Fig. 2",
           "The full method (critic losses + critic selection) beats cross-entropy training "
           "with random selection in accuracy.",
           CRTCL, RANDOM_CRTCL),
    Claim("crtcl_ece", "CrtCl", "§V-E.1 (auxiliary loss only), Fig. 4",
          "Training with the critic losses lowers the expected calibration error against "
          "cross-entropy training on the same labels.",
          (CRTCL_LOSS, RANDOM_CRTCL), paired_mean_ece("crtcl_loss_only", "random@crtcl"),
          "Δ ECE (CE − CrtCl)", plot="per seed"),
    _beats("crtcl_tod_selects_better", "CrtCl", "§V-E.2 (selection only), Fig. 5",
           "With no auxiliary loss backpropagated, TOD's selection beats the critic's.",
           TOD_SELECT_CRTCL, CRTCL_SELECT),
    Claim("crtcl_critic_auroc", "CrtCl", "§I, §III-E (critic scores unlabeled points)",
          "The critic tells correct from wrong predictions: its AUROC on the test set > 0.5.",
          (CRTCL,), diagnostic_mean("crtcl", "test", "auroc_incorrect", 0.5), "AUROC",
          plot="auroc_incorrect"),
    # --- LPLgrad -----------------------------------------------------------------------------
    _beats("lplgrad_beats_ll4al", "LPLgrad", "Tables II–III",
           "LPLgrad beats LL4AL under the same schedule.",
           LPLGRAD, LL4AL),
    _beats("lplgrad_beats_ent_gradnorm", "LPLgrad", "Tables II–III",
           "LPLgrad beats Ent-GradNorm (the same gradient-norm selection without LPLgrad's "
           "loss-prediction training).",
           LPLGRAD, ENT_GRADNORM),
    _beats("lplgrad_beats_random", "LPLgrad", "Tables II–III",
           "LPLgrad beats random sampling under the same schedule.",
           LPLGRAD, RANDOM_LPL),
    _beats("lplgrad_beats_entropy", "LPLgrad", "Tables II–III",
           "LPLgrad beats entropy sampling under the same schedule.",
           LPLGRAD, ENTROPY_LPL),
    _beats("ent_gradnorm_beats_entropy", "LPLgrad", "Tables II–III (Ent-GradNorm)",
           "Entropy-weighted gradient-norm selection beats plain entropy sampling.",
           ENT_GRADNORM, ENTROPY_LPL),
    # --- CRC ---------------------------------------------------------------------------------
    Claim("crc_no_duplicates", "CRC", "Proposition 2, §3.2",
          "CRC never queries an image identical to a labeled one or to another in the same "
          "query when a non-degenerate choice exists (repeated pool, the query searched as "
          "one group, G = Q, L + G below the kernel's rank).",
          (CRC_REPEATED, CRC_REPEATED_LITERAL, RANDOM_REPEATED),
          degenerate_queries("crc@repeated", 2, ("crc_literal@repeated", "random_mt@repeated")),
          "degenerate picks", plot="per seed"),
    _beats("crc_q20_beats_random", "CRC", "§4.3, Table 4 (Q₀ = 120, Q = 20)",
           "With small queries CRC beats random sampling, both trained with Mean Teacher.",
           CRC_Q20, RANDOM_Q20),
    _beats("crc_q20_beats_entropy", "CRC", "§4.3, Table 4 (Q₀ = 120, Q = 20)",
           "With small queries CRC beats entropy sampling, both trained with Mean Teacher.",
           CRC_Q20, ENTROPY_Q20),
    Claim("crc_smaller_q_better", "CRC", "§4.3.2 (text; Table 6 shows it for FixMatch)",
          "At the same label count, CRC with Q = 20 beats CRC with Q = 100 (tested in Table "
          "4's Mean Teacher setting, both from Q₀ = 120, G = 20).",
          (CRC_Q20, CRC_Q100), paired_accuracy_at_labels("crc@q20", "crc@q100", 5, 1),
          "Δ accuracy"),
    Claim("crc_only_gains_from_smaller_q", "CRC", "§4.3.2 (text; Table 6 shows it for FixMatch)",
          "Only CRC gains from a smaller Q: its gain from Q = 100 → 20 exceeds entropy's.",
          (CRC_Q20, CRC_Q100, ENTROPY_Q20, ENTROPY_Q100),
          difference_of_differences(
              paired_accuracy_at_labels("crc@q20", "crc@q100", 5, 1),
              paired_accuracy_at_labels("entropy_mt@q20", "entropy_mt@q100", 5, 1),
              "CRC's gain from Q = 20 − entropy's"), "Δ Δ accuracy"),
    _beats("crc_beats_random", "CRC", "§4.3.2 (text) and Table 6's Q = 100 columns",
           "CRC beats random sampling, both trained with Mean Teacher (Q = 100: the paper "
           "reports no gain in this regime).",
           CRC, RANDOM_MT),
    # --- ARAL --------------------------------------------------------------------------------
    Claim("aral_beats_labels_only", "ARAL", "§4.3 and Fig. 5 (ablation); Fig. 3",
          "Co-training with unlabeled and generated images beats the same classifier "
          "trained on the labels only, at few labels.",
          (ARAL, ARAL_LABELS), paired_accuracy_at("aral", "aral_labels_only"),
          "Δ accuracy", datasets=_MNIST_LIKE, allowed=_ARAL_OPTIM),
    _beats("aral_beats_vaal", "ARAL", "§4.1, Fig. 3", "ARAL beats VAAL on the same classifier.",
           ARAL, VAAL, datasets=_MNIST_LIKE),
    _beats("aral10_beats_random", "ARAL", "§4.1, Fig. 3 (MNIST: 10 + 10 per cycle)",
           "ARAL beats random sampling on its classifier in the MNIST regime.",
           ARAL10, ARAL10_RANDOM, datasets=_MNIST_LIKE, allowed=_ARAL_OPTIM),
    _beats("aral10_beats_entropy", "ARAL", "§4.1, Fig. 3 (MNIST: 10 + 10 per cycle)",
           "ARAL beats entropy sampling on its classifier in the MNIST regime.",
           ARAL10, ARAL10_ENTROPY, datasets=_MNIST_LIKE, allowed=_ARAL_OPTIM),
    _beats("aral10_beats_bald", "ARAL", "§4.1, Fig. 3 (MNIST: 10 + 10 per cycle)",
           "ARAL beats BALD on its classifier in the MNIST regime.",
           ARAL10, ARAL10_BALD, datasets=_MNIST_LIKE, allowed=_ARAL_OPTIM),
    _beats("aral10_beats_no_encoder", "ARAL", "§4.3 (no-encoder ablation, run on CIFAR-10)",
           "ARAL beats its ablation without the encoder (G and D only, BALD selection); the "
           "paper ran this ablation on CIFAR-10 only, so on MNIST-like data it is an "
           "extrapolation.",
           ARAL10, ARAL10_NO_ENCODER, datasets=_MNIST_LIKE),
    # --- background: claims of the SSL papers CRC builds on -------------------------------
    Claim("mean_teacher_beats_supervised", "Mean Teacher (background for CRC)",
          "Tarvainen & Valpola 2017; CRC's SSL baselines",
          "Mean Teacher beats supervised training at few labels.",
          (RANDOM_MT, SUPERVISED_SSL), paired_accuracy_at("random_mt", "random@ssl"),
          "Δ accuracy", kind="background"),
    Claim("fixmatch_beats_supervised", "FixMatch (background for CRC)",
          "Sohn et al. 2020; CRC's SSL baselines",
          "FixMatch beats supervised training on its labeled batch, steps and optimiser, at "
          "few labels.",
          (FIXMATCH, SUPERVISED_FIXMATCH),
          paired_accuracy_at("random_fixmatch", "random@fixmatch"), "Δ accuracy",
          kind="background", allowed=_FIXMATCH_RATES),
)


def get_claims(names: Sequence[str], dataset: str) -> List[Claim]:
  """Claims by name ("all": every claim whose setting exists for `dataset`)."""
  from al_jax import ALError
  from experiments import cli
  by_name = {c.name: c for c in CLAIMS}
  cli.check_names("--claims", list(names))
  if list(names) == ["all"]:
    return [c for c in CLAIMS if not c.datasets or dataset in c.datasets]
  if "all" in names:
    raise ALError("--claims=all names every claim; give it alone")
  unknown = [n for n in names if n not in by_name]
  if unknown:
    raise ALError(f"unknown claim(s) {', '.join(unknown)}; valid: all, "
                  f"{', '.join(by_name)}")
  out = [by_name[n] for n in names]
  for c in out:
    if c.datasets and dataset not in c.datasets:
      raise ALError(f"claim {c.name!r} is defined for {', '.join(c.datasets)}, "
                    f"not {dataset!r}")
  return out


def members_of(claims: Sequence[Claim]) -> List[Member]:
  """The union of the claims' members, in first-use order; one label, one setting."""
  out: Dict[str, Member] = {}
  for c in claims:
    for m in c.members:
      if m.label in out and out[m.label] != m:
        raise ValueError(f"member {m.label!r} is defined twice with different settings")
      out.setdefault(m.label, m)
  return list(out.values())
