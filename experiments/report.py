"""Reports from one run or a study: python -m experiments.report --workdir=W [--target=0.9]

Reads every `results.jsonl` under W and writes to W:
  report.md               learning-curve tables (mean ± std over seeds), AULC, labels to
                          reach a target accuracy, wall-clock split, paired comparisons
                          against `random` (mean difference, 95% t interval, paired t-test)
  accuracy_vs_labels.png  test accuracy vs labels, mean ± std band per method
  ece_vs_labels.png       test ECE vs labels, likewise
  results.csv             every cycle of every run (one row each, for pandas)
  summary.csv             one row per method: AULC, final accuracy, labels-to-target
  (report.md's "Health" section lists every cycle with a health flag, al_jax/health.py)
  floors.json             the linear-probe floor at the study's label counts (cached)
"""

import csv
import json
import math
import os
import sys
from collections import defaultdict
from typing import Dict, List, Optional

import numpy as np
from absl import flags

from al_jax import ALError
from al_jax.writes import writing
from experiments import cli

FLAGS = flags.FLAGS


def define_flags():
  """The command-line flags, defined only when this module runs as a program, so that
  modules importing it (the ledger imports the report) keep their own flags."""
  flags.DEFINE_string("workdir", None, "A run or study directory.")
  flags.DEFINE_float("target", None, "Target accuracy for labels-to-target "
                     "(default: 95% of the best final mean accuracy).", lower_bound=0.0,
                     upper_bound=1.0)
  flags.DEFINE_string("baseline", "random", "Method the paired comparisons are against.")
  flags.DEFINE_bool("floor", True, "Show the linear-probe floor (experiments/floors.py) beside "
                    "the curves.")
  flags.DEFINE_string("data_dir", "", "TFDS data directory, for the linear-probe floor.")


_COLUMNS = ("method", "objective", "acquisition", "dataset", "seed", "cycle", "num_labeled",
            "test_accuracy", "test_ece", "test_nll", "test_brier", "train_seconds",
            "query_seconds", "score_seconds", "select_seconds", "eval_seconds",
            "compile_seconds", "steps_per_second", "health")


def load_runs(workdir: str) -> List[List[Dict]]:
  """Every run's rows (sorted by cycle) under `workdir`."""
  runs = []
  for dirpath, _, files in sorted(os.walk(workdir)):
    if "results.jsonl" in files:
      rows = []
      with open(os.path.join(dirpath, "results.jsonl")) as f:
        for line in f:
          if line.strip():
            try:
              rows.append(json.loads(line))
            except ValueError:
              break
      if rows:
        runs.append(sorted(rows, key=lambda r: r["cycle"]))
  return runs


def aulc(labels: np.ndarray, acc: np.ndarray) -> float:
  """Area under the accuracy-vs-labels curve, normalised by the label range (so in [0, 1])."""
  if len(labels) < 2:
    return float(acc[0])
  return float(np.trapezoid(acc, labels) / (labels[-1] - labels[0]))


def mean_ci(diffs: np.ndarray):
  """Mean, 95% t interval half-width and paired t-test p-value (H0: mean 0)."""
  from scipy import stats
  n = len(diffs)
  m = float(np.mean(diffs))
  if n < 2:
    return m, float("nan"), float("nan")
  sd = float(np.std(diffs, ddof=1))
  half = float(stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n))
  p = float(stats.ttest_1samp(diffs, 0.0).pvalue) if sd > 0 else (0.0 if m else 1.0)
  return m, half, p


def summarise(runs: List[List[Dict]], target: Optional[float], baseline: str):
  by_method = defaultdict(dict)  # method -> seed -> rows
  for rows in runs:
    by_method[rows[0]["method"]][rows[0]["seed"]] = rows
  curves = {}
  for m, seeds in sorted(by_method.items()):
    n_cycles = min(len(r) for r in seeds.values())
    # A study still running: every seed is read up to the cycle its shortest one reached.
    short = sorted(s for s, r in seeds.items() if len(r) == n_cycles)
    truncated = (n_cycles, short) if max(len(r) for r in seeds.values()) > n_cycles else None
    labels = np.array([r["num_labeled"] for r in next(iter(seeds.values()))[:n_cycles]], float)
    acc = np.array([[r["test_accuracy"] for r in rows[:n_cycles]] for rows in seeds.values()])
    ece = np.array([[r["test_ece"] for r in rows[:n_cycles]] for rows in seeds.values()])
    tr = np.array([[r["train_seconds"] for r in rows[:n_cycles]] for rows in seeds.values()])
    qu = np.array([[r["query_seconds"] for r in rows[:n_cycles]] for rows in seeds.values()])
    curves[m] = {"labels": labels, "acc": acc, "ece": ece, "train_s": tr, "query_s": qu,
                 "seeds": list(seeds), "aulc": {s: aulc(labels, a)
                                                for s, a in zip(seeds, acc)},
                 "truncated": truncated}
  if target is None:
    target = 0.95 * max(c["acc"].mean(0)[-1] for c in curves.values())
  for c in curves.values():
    mean = c["acc"].mean(0)
    hit = np.flatnonzero(mean >= target)
    c["labels_to_target"] = int(c["labels"][hit[0]]) if len(hit) else None
    c["target_at_start"] = bool(len(hit)) and hit[0] == 0
  paired = {}
  if baseline in curves:
    base = curves[baseline]
    for m, c in curves.items():
      if m == baseline:
        continue
      common = sorted(set(c["seeds"]) & set(base["seeds"]))
      k = min(len(c["labels"]), len(base["labels"]))
      # Paired only on the same label schedule, over the cycles both have finished: the same
      # AULC range and the same label count at the last common cycle.
      lab = c["labels"][:k]
      if not common or not np.array_equal(lab, base["labels"][:k]):
        paired[m] = {"n": len(common), "skipped": "no common seed" if not common else
                     "another label schedule than the baseline's"}
        continue
      acc_of = lambda cur, s: cur["acc"][cur["seeds"].index(s)][:k]
      d_aulc = np.array([aulc(lab, acc_of(c, s)) - aulc(lab, acc_of(base, s)) for s in common])
      d_final = np.array([acc_of(c, s)[-1] - acc_of(base, s)[-1] for s in common])
      paired[m] = {"n": len(common), "aulc": mean_ci(d_aulc), "final": mean_ci(d_final),
                   "labels": int(c["labels"][k - 1])}
  return curves, target, paired


def _schedule(c) -> str:
  """"first→last (N cycles)" of a member's label counts."""
  lab = c["labels"]
  return f"{int(lab[0])}→{int(lab[-1])} ({len(lab)})"


def _p(p: float) -> str:
  return "n/a" if not math.isfinite(p) else ("<0.001" if p < 0.001 else f"{p:.3f}")


def plot(curves, key: str, ylabel: str, path: str, title: str, floor=None) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  many = len(curves) > 6
  # Past ten members matplotlib's default colours repeat: 20 colours × 4 line styles, and the
  # legend beside the axes rather than over the curves.
  fig, ax = plt.subplots(figsize=(10.4 if many else 6.4, 4.4 + (0.12 * len(curves) if
                                                               len(curves) > 30 else 0)),
                         dpi=120)
  colours = plt.get_cmap("tab20" if len(curves) > 10 else "tab10").colors
  styles = ("-", "--", ":", "-.")
  for i, (m, c) in enumerate(curves.items()):
    mean, std = c[key].mean(0), _std(c[key], 0)
    line, = ax.plot(c["labels"], mean, marker="o", ms=3, color=colours[i % len(colours)],
                    ls=styles[(i // len(colours)) % len(styles)],
                    label=f"{m} (n={len(c['seeds'])})")
    ax.fill_between(c["labels"], mean - std, mean + std, color=line.get_color(), alpha=0.2)
  if floor:
    n = sorted(floor)
    ax.plot(n, [np.mean(floor[k]) for k in n], "k--", lw=1,
            label="linear probe (logistic regression, random labels)")
  ax.set_xlabel("number of labeled training images")
  ax.set_ylabel(ylabel)
  ax.set_title(title + " (band: ± 1 std)")
  ax.grid(alpha=0.3)
  if many:
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0,
              ncol=2 if len(curves) > 18 else 1)
  else:
    ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def _std(a: np.ndarray, axis=None):
  """Sample standard deviation over seeds (ddof=1); 0 for a single seed."""
  n = a.shape[0] if axis == 0 else a.size
  return a.std(axis=axis, ddof=1) if n > 1 else np.zeros_like(a.mean(axis=axis))


def _pm(a: np.ndarray, fmt: str = ".4f") -> str:
  return f"{a.mean():{fmt}} ± {_std(a):{fmt}}" if len(a) > 1 else f"{a.mean():{fmt}}"


def _ece_bins(workdir: str) -> str:
  """The runs' `eval.ece_bins` (their config.json), or "15" (the default) where none says."""
  bins = set()
  for dirpath, _, files in os.walk(workdir):
    if "config.json" in files:
      try:
        with open(os.path.join(dirpath, "config.json")) as f:
          bins.add(json.load(f)["config"]["eval"]["ece_bins"])
      except (OSError, ValueError, KeyError, TypeError):
        pass
  return "/".join(str(b) for b in sorted(bins)) if bins else "15"


def linear_probe_floor(workdir: str, dataset: str, curves, data_dir: str = ""):
  """{labels: [accuracy per seed]} of the linear probe at the curves' label counts, or a
  one-line reason it is unavailable (e.g. the dataset is not prepared here)."""
  from experiments import floors as floors_lib
  labels = sorted({int(n) for c in curves.values() for n in c["labels"]})
  seeds = sorted({int(s) for c in curves.values() for s in c["seeds"]})
  try:
    return floors_lib.cached_linear_probe(workdir, dataset, labels, seeds, data_dir), ""
  except Exception as e:  # pylint: disable=broad-except  (a report must not fail on it)
    return None, f"linear probe unavailable: {str(e).splitlines()[0] if str(e) else e!r}"


def write_report(workdir: str, target: Optional[float] = None,
                 baseline: str = "random", floor: bool = True, data_dir: str = "") -> Dict:
  runs = load_runs(workdir)
  if not runs:
    raise FileNotFoundError(f"no results.jsonl under {workdir}")
  target_flag = target
  curves, target, paired = summarise(runs, target, baseline)
  ds = runs[0][0]["dataset"]
  ece_bins = _ece_bins(workdir)
  floors, floor_note = (linear_probe_floor(workdir, ds, curves, data_dir) if floor
                        else (None, "linear probe not computed (--nofloor)"))
  for key, ylabel, name, title, fl in (
      ("acc", "test accuracy", "accuracy_vs_labels.png",
       f"{ds}: test accuracy vs labels, mean over seeds", floors),
      ("ece", f"test ECE ({ece_bins} bins)", "ece_vs_labels.png",
       f"{ds}: expected calibration error vs labels, mean over seeds", None)):
    with writing(os.path.join(workdir, name)):
      plot(curves, key, ylabel, os.path.join(workdir, name), title, fl)
  health = health_flags(runs)
  with writing(os.path.join(workdir, "results.csv")), \
      open(os.path.join(workdir, "results.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=_COLUMNS, extrasaction="ignore")
    w.writeheader()
    for rows in runs:
      w.writerows([dict(r, health=" ".join(r.get("health", []))) for r in rows])
  rule = ("--target" if target_flag is not None else
          "95% of the best member's final mean accuracy")
  schedules = {_schedule(c) for c in curves.values()}
  lines = [f"# AL report: {ds}", "",
           f"{len(runs)} runs, methods: {', '.join(curves)}. Accuracy and ECE on the full test "
           f"set; mean ± std (sample standard deviation) over seeds. ECE: {ece_bins} "
           "equal-width bins of the max-softmax confidence (`eval.ece_bins`).", "",
           "![accuracy](accuracy_vs_labels.png) ![ece](ece_vs_labels.png)", "",
           "## Summary", "",
           "*labels*: first → last label count (cycles). *AULC*: area under the "
           "accuracy-vs-labels curve divided by the member's label range; *final*: at its "
           "last label count. " + ("Members with different *labels* are not comparable on "
                                   "AULC or final accuracy. " if len(schedules) > 1 else "")
           + f"*Labels to target*: the first label count whose mean accuracy ≥ {target:.4f} "
           f"({rule}); *at start* where the first cycle already reaches it. *query s*: mean "
           "seconds of the cycles that queried (the last cycle does not).", "",
           "| method | seeds | labels | AULC | final accuracy | final ECE | labels to target | "
           "train s/cycle | query s |", "|---|---|---|---|---|---|---|---|---|"]
  summary = []
  notes = []
  for m, c in curves.items():
    a = np.array(list(c["aulc"].values()))
    queried = c["query_s"][:, c["query_s"].mean(0) > 0]
    row = {"method": m, "seeds": len(c["seeds"]), "first_labels": int(c["labels"][0]),
           "last_labels": int(c["labels"][-1]), "cycles": len(c["labels"]),
           "aulc_mean": a.mean(), "aulc_std": float(_std(a)),
           "final_acc_mean": c["acc"][:, -1].mean(), "final_acc_std": float(_std(c["acc"][:, -1])),
           "final_ece_mean": c["ece"][:, -1].mean(), "final_ece_std": float(_std(c["ece"][:, -1])),
           "target": target, "labels_to_target": c["labels_to_target"]}
    summary.append(row)
    reach = ("not reached" if c["labels_to_target"] is None else
             f"{c['labels_to_target']}" + (" (at start)" if c["target_at_start"] else ""))
    lines.append(f"| {m} | {len(c['seeds'])} | {_schedule(c)} | {_pm(a)} | "
                 f"{_pm(c['acc'][:, -1])} | {_pm(c['ece'][:, -1])} | {reach} | "
                 f"{c['train_s'].mean():.2f} | "
                 + (f"{queried.mean():.2f}" if queried.size else "–") + " |")
    if c["truncated"]:
      k, short = c["truncated"]
      notes.append(f"{m}: read up to cycle {k - 1} ({k} cycles), where seed(s) "
                   f"{', '.join(map(str, short))} stopped; the other seeds ran further.")
  if notes:
    lines += ["", "Unfinished runs: " + " ".join(notes)]
  with writing(os.path.join(workdir, "summary.csv")), \
      open(os.path.join(workdir, "summary.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(summary[0]))
    w.writeheader()
    w.writerows(summary)
  lines += ["", f"## Paired comparison against `{baseline}`", ""]
  if baseline not in curves:
    lines.append(f"No member is named `{baseline}`: pass `--baseline=NAME` to compare against "
                 "another member.")
  elif len(curves) == 1:
    lines.append(f"`{baseline}` is the only member.")
  else:
    lines += ["Mean difference (method − baseline) over the seeds both ran (a study draws "
              "the same initial pool for every member of a seed), with a 95% t interval "
              "(half-width) and a two-sided paired t-test p-value; over the cycles both "
              "finished, on the same label schedule only.", "",
              "| method | seeds | Δ AULC | 95% CI | p | Δ accuracy | at labels | 95% CI | p |",
              "|---|---|---|---|---|---|---|---|---|"]
    for m, p in paired.items():
      if "skipped" in p:
        lines.append(f"| {m} | {p['n']} | not compared: {p['skipped']} |||||||")
        continue
      fmt = lambda t: (f"{t[0]:+.4f} | " + (f"±{t[1]:.4f}" if math.isfinite(t[1]) else "n/a")
                       + f" | {_p(t[2])}")
      d_final = fmt(p["final"]).split(" | ", 1)
      lines.append(f"| {m} | {p['n']} | {fmt(p['aulc'])} | {d_final[0]} | {p['labels']} | "
                   f"{d_final[1]} |")
  lines += ["", "## Health", "",
            "Cycles whose training stayed at chance or whose side model's loss diverged "
            "(al_jax/health.py): their accuracies are not a method's result.", ""]
  if health:
    lines += ["| method | seed | cycle | labels | flags |", "|---|---|---|---|---|"]
    lines += [f"| {m} | {s} | {k} | {n} | {', '.join(f)} |" for m, s, k, n, f in health]
  else:
    lines.append("No cycle is flagged.")
  lines += [""] + cost_section(runs)
  lines += ["", "## Linear-probe floor", "",
            "Logistic regression on the raw pixels of the same number of random labeled "
            "images (experiments/floors.py), mean ± std over the study's seeds: a method "
            "whose mean curve is below it at a label count has a model that did not learn "
            "there (the reproduction ledger withholds a verdict on such a member: its mean "
            "accuracy below the probe's mean at a cycle its statistic reads).", ""]
  if floors:
    lines += ["| labels | linear probe |", "|---|---|"]
    lines += [f"| {n} | {_pm(np.array(floors[n]))} |" for n in sorted(floors)]
  else:
    lines.append(floor_note + ".")
  lines += ["", "## Learning curves (test accuracy, mean ± std)", ""]
  for m, c in curves.items():
    lines += [f"### {m}", "", "| cycle | labels | accuracy | ECE | train s | query s |",
              "|---|---|---|---|---|---|"]
    for k, lab in enumerate(c["labels"]):
      lines.append(f"| {k} | {int(lab)} | {_pm(c['acc'][:, k])} | {_pm(c['ece'][:, k])} | "
                   f"{c['train_s'][:, k].mean():.2f} | {c['query_s'][:, k].mean():.2f} |")
    lines.append("")
  with writing(os.path.join(workdir, "report.md")), \
      open(os.path.join(workdir, "report.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  return {"curves": curves, "target": target, "paired": paired, "summary": summary,
          "floors": floors, "health": health}


# The cost table's phases (results rows' fields, al_jax.loop.cycle_cost): what a cycle spends
# its seconds on. Compiling happens within the others (a first call compiles, then runs).
_COST_PHASES = (("train", "train_seconds"), ("eval", "eval_seconds"),
                ("score", "score_seconds"), ("select", "select_seconds"),
                ("compile", "compile_seconds"))


def _cycle_seconds(r: Dict) -> float:
  return r["train_seconds"] + r.get("eval_seconds", 0.0) + r["query_seconds"]


def cost_section(runs: List[List[Dict]]) -> List[str]:
  """Markdown lines: per member (a run's `method`), mean seconds per cycle of each phase,
  the share of the cycle spent compiling, and training steps per second (al_jax/costs.py).

  A cycle's seconds are its train + eval + query seconds (query = score + select + the
  acquisition's own overhead); the share compiling is the member's compile seconds over
  those, over every cycle of every seed. Rows written before the cost fields existed show –.
  """
  by_member: Dict[str, List[Dict]] = defaultdict(list)
  seeds: Dict[str, set] = defaultdict(set)
  for rows in runs:
    for r in rows:
      by_member[r["method"]].append(r)
      seeds[r["method"]].add(r["seed"])
  lines = ["## Cost per cycle", "",
           "Mean wall seconds per AL cycle over every cycle of every seed. *compile* is the "
           "time JAX spent tracing, lowering and compiling (or loading from the persistent "
           "compilation cache) within train, eval and the query, so it is part of those "
           "columns, not added to them; *compiling* is its share of the cycle (train + eval + "
           "query). *first cycle* is cycle 0's seconds, where the steps compile; *steps/s* "
           "counts training steps per second of training not spent compiling.", "",
           "| member | seeds | cycles | " + " | ".join(f"{p} s" for p, _ in _COST_PHASES)
           + " | cycle s | first cycle s | compiling | steps/s |",
           "|---|---|---|" + "---|" * (len(_COST_PHASES) + 4)]
  for m, rows in by_member.items():
    def mean(key, rows=rows):
      vals = [r[key] for r in rows if key in r]
      return f"{np.mean(vals):.2f}" if vals else "–"
    total = lambda rs: sum(_cycle_seconds(r) for r in rs)
    first = [r for r in rows if r["cycle"] == 0]
    known = [r for r in rows if "compile_seconds" in r]
    share = (f"{100 * sum(r['compile_seconds'] for r in known) / total(known):.0f}%"
             if known and total(known) > 0 else "–")
    sps = [r["steps_per_second"] for r in rows if r.get("steps_per_second")]
    lines.append(f"| {m} | {len(seeds[m])} | {len(rows)} | "
                 + " | ".join(mean(k) for _, k in _COST_PHASES)
                 + f" | {total(rows) / len(rows):.2f} | "
                 + (f"{total(first) / len(first):.2f}" if first else "–")
                 + f" | {share} | " + (f"{np.mean(sps):.1f}" if sps else "–") + " |")
  return lines


def health_flags(runs: List[List[Dict]]):
  """(method, seed, cycle, labels, flags) of every flagged cycle (rows' `health` field)."""
  from al_jax.health import current  # pylint: disable=g-import-not-at-top
  return [(r["method"], r["seed"], r["cycle"], r["num_labeled"], flags)
          for rows in runs for r in rows if (flags := current(r.get("health") or []))]


def main(argv):
  if len(argv) > 1:
    cli.fail(f"unexpected arguments: {' '.join(argv[1:])}")
  if not FLAGS.workdir or not os.path.isdir(FLAGS.workdir):
    cli.fail(f"--workdir must be an existing directory, got {FLAGS.workdir!r}")
  try:
    out = write_report(FLAGS.workdir, FLAGS.target, FLAGS.baseline, FLAGS.floor,
                       FLAGS.data_dir)
  except (FileNotFoundError, ALError) as e:
    cli.fail(e)
  for r in out["summary"]:
    print(f"{r['method']:<24} AULC {r['aulc_mean']:.4f} ± {r['aulc_std']:.4f}  "
          f"final acc {r['final_acc_mean']:.4f}")
  print(f"wrote {os.path.join(FLAGS.workdir, 'report.md')}")


if __name__ == "__main__":
  define_flags()
  cli.run(main)
