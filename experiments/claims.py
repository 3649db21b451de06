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
NOT_MEASURED = "not measured"
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
  """
  values: np.ndarray
  parts: Sequence[str]
  threshold: float
  greater: bool = True
  exact: bool = False
  note: str = ""
  checked: Optional[Sequence[int]] = None


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


def decide(meas: Measurement) -> Tuple[str, List[Tuple[str, float, float, str]]]:
  """The claim's verdict and, per part, (part, mean, half-width, part verdict); NOT_MEASURED
  with no parts when `why_not_measured` has a reason (never "holds" without data)."""
  if why_not_measured(meas) is not None:
    return NOT_MEASURED, []
  values = np.asarray(meas.values, float).reshape(len(meas.values), -1)
  rows = []
  for j, part in enumerate(meas.parts):
    m, h = t_interval(values[:, j])
    if meas.exact:
      verdict = HOLDS if np.all(values[:, j] == 0) else FAILS
    elif not math.isfinite(h):
      verdict = INCONCLUSIVE
    else:
      lo, hi = m - h, m + h
      above, below = lo > meas.threshold, hi < meas.threshold
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
  if meas.exact or why_not_measured(meas) is not None:
    return None
  values = np.asarray(meas.values, float).reshape(len(meas.values), -1)
  out = 0.0
  for j in range(values.shape[1]):
    d = values[:, j] - meas.threshold
    sd = d.std(ddof=1)
    if sd == 0:
      p = 0.0 if (d.mean() > 0) == meas.greater and d.mean() != 0 else 1.0
    else:
      t = d.mean() / (sd / math.sqrt(len(d)))
      p = float(stats.t.sf(t if meas.greater else -t, len(d) - 1))
    out = max(out, p)
  return out


def holm(pvalues: Dict[str, Optional[float]], alpha: float = 0.05) -> Dict[str, bool]:
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


def paired_aulc(a: str, b: str) -> Callable[[Runs], Measurement]:
  """AULC(a) − AULC(b) per seed; the claim is that it is > 0."""
  def stat(runs: Runs) -> Measurement:
    seeds = _seeds(runs, a, b)
    v = [[runs[a][s].aulc() - runs[b][s].aulc()] for s in seeds]
    return Measurement(np.array(v), ["all cycles"], 0.0,
                       note=f"AULC({a}) − AULC({b}), paired by seed")
  return stat


def paired_accuracy_at(a: str, b: str, cycle: int = 0) -> Callable[[Runs], Measurement]:
  """Test accuracy of a − b at one cycle (cycle 0: the fewest labels), per seed."""
  def stat(runs: Runs) -> Measurement:
    seeds = _seeds(runs, a, b)
    v = [[runs[a][s].rows[cycle]["test_accuracy"] - runs[b][s].rows[cycle]["test_accuracy"]]
         for s in seeds]
    n = runs[a][seeds[0]].rows[cycle]["num_labeled"]
    return Measurement(np.array(v), [f"{n} labels"], 0.0,
                       note=f"test accuracy of {a} − {b} at cycle {cycle}, paired by seed")
  return stat


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
  return stat


def diagnostic_per_cycle(label: str, split: str, key: str, threshold: float,
                         first_cycle: int = 0) -> Callable[[Runs], Measurement]:
  """A loss-estimation diagnostic (al_jax.diagnostics) at each cycle ≥ first_cycle."""
  def stat(runs: Runs) -> Measurement:
    seeds = _seeds(runs, label)
    k = min(len(runs[label][s].rows) for s in seeds)
    cycles = list(range(first_cycle, k))
    reports = [[runs[label][s].diagnostics(c)[split] for c in cycles] for s in seeds]
    v = [[r["score"][key] for r in row] for row in reports]
    # The same statistic of least confidence (1 − max softmax) on the same probe, as a
    # reference a reader can compare the method's score with.
    ref = np.mean([[r["least_confidence"][key] for r in row] for row in reports])
    return Measurement(np.array(v, float), [f"cycle {c}" for c in cycles], threshold,
                       note=f"{key} of the acquisition score on the {split} "
                       f"{'probe' if split == 'unlabeled' else 'set'}, per cycle (least "
                       f"confidence on the same points: {ref:+.4f} on average)")
  return stat


def diagnostic_mean(label: str, split: str, key: str,
                    threshold: float) -> Callable[[Runs], Measurement]:
  """A loss-estimation diagnostic averaged over the run's cycles, per seed."""
  def stat(runs: Runs) -> Measurement:
    per_cycle = diagnostic_per_cycle(label, split, key, threshold)(runs)
    return Measurement(per_cycle.values.mean(1, keepdims=True), ["mean over cycles"],
                       threshold, note=per_cycle.note.replace("per cycle", "mean over cycles"))
  return stat


def degenerate_queries(label: str, copies: int) -> Callable[[Runs], Measurement]:
  """Images a run queried although an identical copy was already labeled or queried with it.

  On a pool holding every training image `copies` times (`al.pool_copies`), index i and
  i + k·N are the same image. Counts, over all queries of the run, the selected indices whose
  image was already in the labeled set or selected earlier in the same query.
  """
  def stat(runs: Runs) -> Measurement:
    seeds = _seeds(runs, label)
    v, checked = [], []
    for s in seeds:
      run = runs[label][s]
      n = run.rows[0]["pool_size"] // copies
      bad = queried = 0
      for c in range(len(run.rows) - 1):
        before, after = run.pool(c), run.pool(c + 1)
        seen = set((before % n).tolist())
        for i in np.setdiff1d(after, before):
          bad += int(i % n in seen)
          queried += 1
          seen.add(int(i % n))
      v.append([bad])
      checked.append(queried)
    return Measurement(np.array(v, float), ["all queries"], 0.0, exact=True,
                       note=f"degenerate picks on a pool of {copies} copies of each image",
                       checked=checked)
  return stat


# --- the registry --------------------------------------------------------------------------
def _m(label, method, protocol="", schedule_of="", **overrides) -> Member:
  return Member(label, method, protocol, tuple(sorted(overrides.items())), schedule_of)


_DIAG = {"diagnostics": True}
TOD = _m("tod", "tod", "tod", **_DIAG)
RANDOM_TOD = _m("random@tod", "random", "tod")
CRTCL = _m("crtcl", "crtcl", "crtcl", **_DIAG)
CRTCL_LOSS = _m("crtcl_loss_only", "crtcl_loss_only", "crtcl")
RANDOM_CRTCL = _m("random@crtcl", "random", "crtcl")
LPLGRAD = _m("lplgrad", "lplgrad", "lplgrad")
LL4AL = _m("ll4al", "ll4al", "lplgrad")
ENTROPY_LPL = _m("entropy@lplgrad", "entropy", "lplgrad")
ENT_GRADNORM = _m("ent_gradnorm", "ent_gradnorm", "lplgrad")
CRC = _m("crc", "crc")
RANDOM_MT = _m("random_mt", "random_mt")
# Proposition 2 is about the queried set X_u*: CRC searches it as one group (G = Q), since
# with G < Q the Q/G best groups are scored independently and two of them may hold copies of
# one image (measured: every degenerate pick at G = Q/10 was such a cross-group copy, none a
# copy inside a group or of a labeled image). Three cycles (two queries) check it.
CRC_REPEATED = _m("crc@repeated", "crc", **{
    "al.pool_copies": 2, "al.cycles": 3,
    "derive.group_fraction": 1.0})
ARAL = _m("aral", "aral")
VAAL = _m("vaal", "vaal")
# Members of "at few labels" claims train only the first cycle (the claim reads cycle 0; a
# cycle's training does not depend on how many follow).
_FIRST = {"al.cycles": 1}
ARAL_LABELS = _m("aral_labels_only", "aral_labels_only", **_FIRST)
FIXMATCH = _m("random_fixmatch", "random_fixmatch", **_FIRST)
# Supervised training on Mean Teacher's preset schedule (class-balanced initial pool, the
# same steps, optimiser and model), so only the use of unlabeled data differs.
SUPERVISED_SSL = _m("random@ssl", "random", schedule_of="random_mt", **_FIRST)

_MNIST_LIKE = ("digits", "mnist", "fashion_mnist")

CLAIMS: Tuple[Claim, ...] = (
    Claim("tod_cod_spearman", "TOD", "§5.1, Fig. 5",
          "The cyclic output discrepancy ranks unlabeled samples by their true loss: its "
          "Spearman correlation with the loss is positive at every cycle ≥ 1.",
          (TOD,), diagnostic_per_cycle("tod", "unlabeled", "spearman", 0.0, first_cycle=1),
          "Spearman ρ", plot="spearman"),
    Claim("tod_beats_random", "TOD", "§5.2, Fig. 7 and Table 1",
          "TOD (COD selection + EMA consistency) beats random sampling.",
          (TOD, RANDOM_TOD), paired_aulc("tod", "random@tod"), "Δ AULC"),
    Claim("crtcl_ece", "CrtCl", "§V-E.1 (auxiliary loss only), Fig. 4",
          "Training with the critic losses lowers the expected calibration error against "
          "cross-entropy training on the same labels.",
          (CRTCL_LOSS, RANDOM_CRTCL), paired_mean_ece("crtcl_loss_only", "random@crtcl"),
          "Δ ECE (CE − CrtCl)"),
    Claim("crtcl_critic_auroc", "CrtCl", "§I, §III-E (critic scores unlabeled points)",
          "The critic tells correct from wrong predictions: its AUROC on the test set > 0.5.",
          (CRTCL,), diagnostic_mean("crtcl", "test", "auroc_incorrect", 0.5), "AUROC",
          plot="auroc_incorrect"),
    Claim("lplgrad_beats_ll4al", "LPLgrad", "Tables II–III",
          "LPLgrad beats LL4AL under the same schedule.",
          (LPLGRAD, LL4AL), paired_aulc("lplgrad", "ll4al"), "Δ AULC"),
    Claim("lplgrad_beats_entropy", "LPLgrad", "Tables II–III",
          "LPLgrad beats entropy sampling under the same schedule.",
          (LPLGRAD, ENTROPY_LPL), paired_aulc("lplgrad", "entropy@lplgrad"), "Δ AULC"),
    Claim("ent_gradnorm_beats_entropy", "LPLgrad", "Tables II–III (Ent-GradNorm)",
          "Entropy-weighted gradient-norm selection beats plain entropy sampling.",
          (ENT_GRADNORM, ENTROPY_LPL), paired_aulc("ent_gradnorm", "entropy@lplgrad"),
          "Δ AULC"),
    Claim("crc_no_duplicates", "CRC", "Proposition 2, §3.2",
          "CRC never queries an image identical to a labeled one or to another in the same "
          "query when a non-degenerate choice exists (repeated pool, the query searched as "
          "one group, G = Q).",
          (CRC_REPEATED,), degenerate_queries("crc@repeated", 2), "degenerate picks"),
    Claim("crc_beats_random", "CRC", "§4.3, Table 4",
          "CRC beats random sampling, both trained with Mean Teacher.",
          (CRC, RANDOM_MT), paired_aulc("crc", "random_mt"), "Δ AULC"),
    Claim("aral_beats_labels_only", "ARAL", "§4.3 and Fig. 5 (ablation); Fig. 3",
          "Co-training with unlabeled and generated images beats the same classifier "
          "trained on the labels only, at few labels.",
          (ARAL, ARAL_LABELS), paired_accuracy_at("aral", "aral_labels_only"),
          "Δ accuracy", datasets=_MNIST_LIKE),
    Claim("aral_beats_vaal", "ARAL", "§4.2, Fig. 3",
          "ARAL beats VAAL.", (ARAL, VAAL), paired_aulc("aral", "vaal"), "Δ AULC",
          datasets=_MNIST_LIKE),
    Claim("mean_teacher_beats_supervised", "CRC (SSL baselines)", "§2.1, §4.3, Tables 3–4",
          "Mean Teacher beats supervised training at few labels.",
          (RANDOM_MT, SUPERVISED_SSL), paired_accuracy_at("random_mt", "random@ssl"),
          "Δ accuracy"),
    Claim("fixmatch_beats_supervised", "CRC (SSL baselines)", "§2.1, §4.3, Tables 5–6",
          "FixMatch beats supervised training at few labels.",
          (FIXMATCH, SUPERVISED_SSL), paired_accuracy_at("random_fixmatch", "random@ssl"),
          "Δ accuracy"),
)


def get_claims(names: Sequence[str], dataset: str) -> List[Claim]:
  """Claims by name ("all": every claim whose setting exists for `dataset`)."""
  from al_jax import ALError
  by_name = {c.name: c for c in CLAIMS}
  if list(names) == ["all"]:
    return [c for c in CLAIMS if not c.datasets or dataset in c.datasets]
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
