"""The reproduction ledger: run the papers' claims as one study and decide each of them.

    python -m experiments.reproduce --claims=all --dataset=fashion_mnist --seeds=0,1,2 \\
        --workdir=W
    python -m experiments.reproduce --list      # every claim: paper, source, statement

The claims (`experiments/claims.py`) name the study members they need; the union of those
members runs as one study in `W/runs` (experiments/study.py: every member on the same seeds,
so paired members share their initial pool; re-running the same command continues a killed
ledger where it stopped). Then every claim is decided from per-seed values (mean, 95%
Student-t interval, holds / does not hold / inconclusive) and written to:

  W/REPRODUCTION.md     one row per claim: paper, source, statement, setting, measured value,
                        verdict; then each claim's per-seed values and plot
  W/claims/<name>.png   the claim's members' learning curves, or its per-cycle statistic
  W/runs/report.md      the usual study report of every member (with the linear-probe floor)
"""

import contextlib
import datetime
import inspect
import json
import os
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
from absl import flags

from experiments import cli

FLAGS = flags.FLAGS


def define_flags():
  """The command-line flags, defined only when this module runs as a program, so that
  modules importing it (the ledger imports the report) keep their own flags."""
  flags.DEFINE_list("claims", ["all"], "Claims to reproduce (names from --list), or all.")
  flags.DEFINE_string("dataset", "digits", "Dataset name.")
  flags.DEFINE_string("preset", "cpu", "Preset: cpu or paper.")
  flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds; every member runs every seed.")
  flags.DEFINE_string("workdir", None, "Ledger directory (runs/, claims/, REPRODUCTION.md).")
  flags.DEFINE_string("data_dir", "", "TFDS data directory.")
  flags.DEFINE_multi_string("set", [], "Config override key=value applied to every member.")
  flags.DEFINE_bool("list", False, "Print every claim and exit.")
  flags.DEFINE_integer("workers", 1, "Run the ledger's study members in this many processes "
                       "(experiments.main --workers).", lower_bound=1)


def build_configs(claims, dataset: str, preset: str, seeds: Sequence[int],
                  overrides=(), data_dir: str = "") -> List:
  """One locked config per (member, seed), member-major (a study's order)."""
  from experiments import claims as claims_lib
  from experiments.configs import get_config, resolve
  out = []
  for m in claims_lib.members_of(claims):
    schedule = None
    if m.schedule_of:
      # The pool, schedule, optimiser and model of another method's preset, so the two
      # differ only in what the claim compares (e.g. the use of unlabeled data).
      ref = get_config(m.schedule_of, dataset, preset, m.protocol).to_dict()
      schedule = {f"{section}.{k}": v for section in ("al", "train", "optim")
                  for k, v in ref[section].items()}
      schedule["model.name"] = ref["model"]["name"]
      schedule.update({f"model.kwargs.{k}": v for k, v in ref["model"]["kwargs"].items()})
    for s in seeds:
      cli = list(overrides) + ([("data_dir", data_dir)] if data_dir else [])
      # The member's defining settings apply after the command line (a conflicting --set is
      # refused), and derived values (G = Q) are read from the final config.
      c = resolve(m.method, dataset, preset, m.protocol, overrides=cli,
                  member=list(m.overrides) + [("seed", int(s))],
                  schedule_of=schedule).config
      c.method = m.label
      c.lock()
      out.append(c)
  return out


def twin_members(configs) -> Dict[str, str]:
  """label → the earlier member whose run it is: two members whose resolved configs differ
  only in their names and protocol labels (`random@tod` and `random@lplgrad`: the same random
  sampler, schedule, model and pool) are one pairing, so the ledger runs it once and both
  members read that run. A member is a twin only if it is one at every seed."""
  first: Dict[str, str] = {}
  owners: Dict[str, set] = {}
  for c in configs:
    d = c.to_dict()
    for k in ("method", "protocol"):
      d.pop(k, None)
    key = json.dumps(d, sort_keys=True, default=repr)  # the seed is part of the key
    owners.setdefault(c.method, set()).add(first.setdefault(key, c.method))
  return {m: next(iter(o)) for m, o in owners.items() if len(o) == 1 and m not in o}


def _listed_in_study(runs_dir: str) -> set:
  """The member labels an existing study in `runs_dir` runs (empty if there is none)."""
  try:
    with open(os.path.join(runs_dir, "study.json")) as f:
      return {r["method"] for r in json.load(f).get("runs", [])}
  except (OSError, ValueError, KeyError, TypeError, AttributeError):
    return set()


def load_member_runs(runs_dir: str, configs, twins: Optional[Dict[str, str]] = None) -> Dict:
  """label → seed → claims.Run, for finished runs only; a twin member (`twin_members`) reads
  the run of the member it twins."""
  from al_jax import results as results_lib
  from experiments import claims as claims_lib
  from experiments.study import run_dirname
  twins = twins or {}
  out: Dict = {}
  for c in configs:
    path = os.path.join(runs_dir, run_dirname(twins.get(c.method, c.method), c.seed))
    wd = results_lib.Workdir(path)
    rows = wd.read_results() if wd.holds_experiment() else []
    if len(rows) >= c.al.cycles:
      out.setdefault(c.method, {})[c.seed] = claims_lib.Run(rows[:c.al.cycles], path)
  return out


def _num(x: float, unit: str) -> str:
  """A value of the claim's statistic: signed where it is a difference (unit "Δ …")."""
  return f"{x:+.4f}" if unit.startswith("Δ") else f"{x:.4f}"


def _fmt(m: float, lo: float, hi: float, unit: str) -> str:
  """The mean and its 95% interval, as the per-claim tables print them."""
  return _num(m, unit) + (f" [{_num(lo, unit)}, {_num(hi, unit)}]" if np.isfinite(lo) else "")


def _setting(claim, configs_by_label, twins: Optional[Dict[str, str]] = None) -> str:
  parts = []
  for m in claim.members:
    c = configs_by_label[m.label]
    extra = [f"protocol {m.protocol}"] if m.protocol else []
    extra += [f"schedule of {m.schedule_of}"] if m.schedule_of else []
    extra += [f"{k}={v}" for k, v in m.overrides]
    if (twins or {}).get(m.label):
      extra += [f"the same run as `{twins[m.label]}`"]
    parts.append(f"`{m.label}`" + (f" ({', '.join(extra)})" if extra else ""))
  # A difference the claim declares (`Claim.allowed`) is not counted as a confound, so the
  # reader sees it and its justification beside the members' settings.
  declared = "".join(f"; declared difference in the {factor}: {why}"
                     for factor, why in claim.allowed)
  return " vs ".join(parts) + "; " + "; ".join(
      f"`{m.label}`: {_describe(configs_by_label[m.label])}" for m in claim.members) + declared


def _schedule(c) -> str:
  """The learning-rate schedule a run trains with: the optimiser's, times FixMatch's
  cos(7πk/16K) where its objective applies that factor itself (on the optimiser's schedule,
  per epoch with `cosine_steps=0`, per step otherwise)."""
  sched = c.optim.schedule + (f"@{tuple(c.optim.milestones)}" if c.optim.schedule == "step"
                              else "")
  if c.objective == "fixmatch":
    from al_jax.objectives.fixmatch import FixMatch
    defaults = inspect.signature(FixMatch.__init__).parameters
    kw = dict(c.objective_kwargs)
    if kw.get("cosine_7_16", defaults["cosine_7_16"].default):
      if kw.get("cosine_steps", defaults["cosine_steps"].default) == 0:
        sched += " × FixMatch's cos(7πe/16E) per epoch"
      else:
        sched += " × FixMatch's cos(7πk/16K) per step"
  return sched


def _describe(c) -> str:
  """What a reader needs to see that two members differ only in what a claim compares:
  model, optimiser, schedule, labels and training length."""
  sched = _schedule(c)
  warm = "warm start" if c.train.warm_start else "from scratch"
  return (f"{c.model.name}, {c.optim.name} {c.optim.lr:g} {sched}, batch {c.train.batch_size}, "
          f"{c.al.initial} + {c.al.budget} × {c.al.cycles - 1} labels, {c.train.epochs} "
          f"epochs × ≥ {c.train.min_steps_per_epoch} steps, {warm}")


def plot_claim(claim, runs, meas, path: str, floors=None) -> None:
  """The members' accuracy curves (with the linear-probe floor at their label counts), or
  the claim's statistic per part (cycle)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(6.0, 4.0), dpi=110)
  if claim.plot == "accuracy" or meas is None:
    shown = set()
    for m in claim.members:
      seeds = sorted(runs.get(m.label, {}))
      if not seeds:
        continue
      k = min(len(runs[m.label][s].rows) for s in seeds)
      acc = np.array([runs[m.label][s].column("test_accuracy")[:k] for s in seeds])
      lab = runs[m.label][seeds[0]].labels[:k]
      shown.update(int(n) for n in lab)
      line, = ax.plot(lab, acc.mean(0), marker="o", ms=3,
                      label=f"{m.label} (n={len(seeds)}" + (", ± 1 std)" if len(seeds) > 1
                                                            else ")"))
      if len(seeds) > 1:
        sd = acc.std(0, ddof=1)
        ax.fill_between(lab, acc.mean(0) - sd, acc.mean(0) + sd, color=line.get_color(),
                        alpha=0.2)
    n = sorted(x for x in shown if floors and x in floors)
    if n:
      ax.plot(n, [np.mean(floors[x]) for x in n], "k--", lw=1, marker="x", ms=4,
              label="linear probe (same label count)")
    ax.set_xlabel("number of labeled training images")
    ax.set_ylabel("test accuracy")
  else:
    v = np.asarray(meas.values, float).reshape(len(meas.values), -1)
    x = np.arange(v.shape[1])
    for s, row in enumerate(v):  # one grey line (a dot where one part) per seed
      ax.plot(x, row, color="0.7", lw=1, marker=".", ms=5,
              label="each seed" if s == 0 else None)
    ax.plot(x, v.mean(0), marker="o", color="C0", label=f"mean over {len(v)} seeds")
    ax.axhline(meas.threshold, color="k", ls="--", lw=1, label=f"threshold {meas.threshold}")
    ax.set_xticks(x, list(meas.parts), rotation=30)
    ax.set_ylabel(f"{claim.unit} ({claim.plot})")
  ax.set_title(f"{claim.paper}: {claim.name}", fontsize=9)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def _commit() -> str:
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  try:
    head = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, check=True).stdout.strip()
    return head + (" (with uncommitted changes)" if dirty else "")
  except (OSError, subprocess.CalledProcessError):
    return "unknown (not a git checkout)"


def _host() -> str:
  from al_jax.results import host_info
  return host_info()


def run_accelerators(run_paths) -> List[str]:
  """The accelerators the runs ran on (from each run's config.json environment), e.g.
  ["NVIDIA H100 80GB HBM3 (gpu)"]; [] when every run ran on the CPU (the host line says it)."""
  found = set()
  for path in run_paths:
    try:
      with open(os.path.join(path, "config.json")) as f:
        env = json.load(f).get("environment", {})
    except (OSError, ValueError, AttributeError):
      continue
    backend = env.get("backend", "cpu")
    if backend != "cpu":
      found.add(f"{env.get('device_kind') or 'device kind not recorded'} ({backend})")
  return sorted(found)


EXPLORATORY_BELOW = 5  # fewer seeds: the ledger is labelled exploratory


def ledger_floors(workdir: str, runs, configs) -> Dict:
  """{label count: probe accuracy per seed} at every label count of the finished runs
  (cached in W/claims/floors.json), or {} where the probe cannot run (e.g. no data)."""
  from experiments import floors as floors_lib
  labels = sorted({int(r["num_labeled"]) for seeds in runs.values() for run in seeds.values()
                   for r in run.rows})
  if not labels:
    return {}
  c0 = configs[0]
  seeds = sorted({c.seed for c in configs})
  try:
    return floors_lib.cached_linear_probe(os.path.join(workdir, "claims"), c0.dataset, labels,
                                          seeds, c0.data_dir)
  except Exception as e:  # a missing dataset or sklearn: the check is skipped, and said so
    print(f"linear-probe floor unavailable: {str(e).splitlines()[0] if str(e) else e!r}")
    return {}


def _measured_cell(claim, meas, parts) -> str:
  """The row's "measured" cell: the worst part's mean and interval, or an exact claim's
  counts per seed, with the controls / reference beside it."""
  from experiments import claims as claims_lib
  n = len(meas.values)
  if meas.exact:
    out = (f"{claim.unit} per seed: "
           + ", ".join(f"{int(b)} of {q}" for b, q in zip(np.ravel(meas.values), meas.checked))
           + " queried images (must be 0)")
  else:
    j = min(range(len(parts)), key=lambda j: (
        (parts[j][1] - (parts[j][2] if np.isfinite(parts[j][2]) else 0)) if meas.greater
        else -(parts[j][1] + (parts[j][2] if np.isfinite(parts[j][2]) else 0))))
    m, lo, hi = claims_lib.interval(meas, j)
    value = _fmt(m, lo, hi, claim.unit)
    out = (f"{claim.unit} {value}" + (f" (worst of {len(parts)}: {parts[j][0]})"
                                      if len(parts) > 1 else "")
           + f", {n} seeds; threshold {'>' if meas.greater else '<'} {meas.threshold:g}")
  return out + (f"; {meas.context}" if meas.context else "")


def write_ledger(workdir: str, claims, configs, command: str, commit: str = "",
                 wall: str = "", commits: str = "", machine: str = "",
                 machines: str = "", twins: Optional[Dict[str, str]] = None,
                 rewritten_by: str = "") -> Dict:
  """Decides every claim on the finished runs and writes REPRODUCTION.md; returns verdicts.

  Before a claim is decided the ledger checks its premises, and withholds the verdict when
  one fails: members that differ in more than what the claim compares (`claims.confounds`)
  give **confounded**; a member below the linear-probe floor at a cycle the statistic reads
  (`claims.below_floor`), too few seeds or no data give **not measured**; a statistic whose
  own premise fails (Proposition 2's full-rank kernel) gives **premise not met**.

  `commit`/`machine` are those of the last invocation that ran runs; `rewritten_by` (the
  commit of an invocation that found every run finished) says that this code wrote the file
  from them.
  """
  from experiments import claims as claims_lib
  runs_dir = os.path.join(workdir, "runs")
  runs = load_member_runs(runs_dir, configs, twins)
  # Each run once, however many members read it (twins).
  unique = list({run.path: run for seeds in runs.values() for run in seeds.values()}.values())
  seconds = sum(r["train_seconds"] + r.get("eval_seconds", 0.0) + r["query_seconds"]
                for run in unique for r in run.rows)
  by_label = {c.method: c for c in configs}
  from al_jax.writes import writing
  with writing(os.path.join(workdir, "claims")):
    os.makedirs(os.path.join(workdir, "claims"), exist_ok=True)
  floors = ledger_floors(workdir, runs, configs)
  accelerators = run_accelerators(run.path for seeds in runs.values() for run in seeds.values())
  c0 = configs[0]
  seeds = sorted({c.seed for c in configs})
  exploratory = len(seeds) < EXPLORATORY_BELOW
  last = "the last invocation that ran runs" if rewritten_by else "this invocation"
  lines = [f"# Reproduction ledger: {c0.dataset}, {c0.preset} preset"
           + (" (exploratory)" if exploratory else ""), "",
           f"Command: `{command}`  ", f"Commit: `{commit or _commit()}`"
           + (f" ({last}; a ledger continued across commits: {commits})"
              if commits else "") + "  ",
           f"Machine: {machine or _host()}"
           + (f"; runs on {', '.join(accelerators)}" if accelerators else "")
           + (f" ({last}; a ledger continued across machines: {machines})"
              if machines else "") + "  "]
  if rewritten_by:
    lines += [f"Rewritten at `{rewritten_by}` from the finished runs, none re-run: the runs "
              f"come from the commit above, the statistics, verdicts and text from "
              f"`{rewritten_by}`.  "]
  lines += [f"Seeds: {', '.join(map(str, seeds))}; written "
            f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC"
            + (f"; wall time {wall}" if wall else "")
            + f"; member training + evaluation + query time {seconds / 60:.1f} min (sum "
            "over runs). A "
            "ledger may be stopped and continued: the same command resumes it, skipping "
            "finished runs.", ""]
  if exploratory:
    lines += [f"**Exploratory**: {len(seeds)} seed(s) (< {EXPLORATORY_BELOW}); a verdict "
              "here is a lead to test with more seeds, not a finding.", ""]
  lines += [
      "Each value is the mean over seeds with a 95% Student-t interval (a correlation's on "
      "Fisher's z, shown back in ρ). A claim **holds** when the interval lies beyond its "
      "threshold in the claimed direction, **does not hold** when it lies on the other side, "
      "and is **inconclusive** when it straddles the threshold; \"at every cycle\" claims "
      "need every cycle to hold; an exact claim must hold on every seed. A verdict is "
      "withheld where it would not be evidence: **confounded** (the compared members differ "
      "in more than what the claim compares; the factors are listed), **not measured** (a "
      "member learns below the linear-probe floor at the same label count, fewer than "
      f"{claims_lib.MIN_SEEDS} seeds, or no data) and **premise not met** (the claim's own "
      "premise fails in this setting). *Background* claims are those of the papers a method "
      "builds on, shown for context. Every member's learning curve, with the linear-probe "
      "floor, is in [runs/report.md](runs/report.md). The ledger decides many claims at "
      "once: *p* is each claim's one-sided p-value (t over seeds; an \"at every cycle\" "
      "claim takes its largest part's), and **Holm 5%** says whether its verdict survives "
      "the Holm–Bonferroni correction over every paper claim of this ledger that has one, "
      "at the two-sided 5% level of the 95% intervals (one-sided p ≤ 0.025 / (m − i)), so "
      "a claim alone survives exactly when it holds.",
      "",
      "Across machines, the verdicts are what carries, not the last digits: the same seed "
      "gives the same selections and numbers on one machine (tested), but another CPU lets "
      "XLA emit other vector code, and float differences grow over a training run (the "
      "Machine line names the CPU each invocation ran on; each run's config.json its own).",
      "HOLM_SUMMARY", ""]
  header = ["| claim | paper | source | statement | setting | measured | verdict | p | "
            "Holm 5% | health |", "|---|---|---|---|---|---|---|---|---|---|"]
  tables = {"paper": list(header), "background": list(header)}
  details, verdicts, flagged, pvalues = [], {}, [], {}
  for claim in claims:
    table = tables[claim.kind]
    setting = _setting(claim, by_label, twins)
    sick = _health(claim, runs)
    flagged += [(claim.name, *f) for f in sick]
    health = f"⚑ {len(sick)} flagged cycle(s)" if sick else "ok"
    row = f"| {claim.name} | {claim.paper} | {claim.source} | {claim.statement} | {setting} | "
    png = f"{claim.name}.png"
    confounded = claims_lib.confounds(claim, by_label)
    if confounded:
      verdicts[claim.name] = claims_lib.CONFOUNDED
      table.append(row + f"members differ in {', '.join(confounded)} | **confounded** | – | "
                   f"– | {health} |")
      continue
    try:
      meas = claim.statistic(runs)
    except (ValueError, FileNotFoundError) as e:
      verdicts[claim.name] = claims_lib.NOT_MEASURED
      table.append(row + f"not measured: {e} | not measured | – | – | {health} |")
      continue
    low = claims_lib.below_floor(claim, runs, floors)
    verdict, parts = claims_lib.decide(meas)
    if low and verdict != claims_lib.NOT_MEASURED:
      verdict, why = claims_lib.NOT_MEASURED, "; ".join(low)
    else:
      why = (claims_lib.why_not_measured(meas) if verdict == claims_lib.NOT_MEASURED
             else meas.premise if verdict == claims_lib.PREMISE_NOT_MET else None)
    verdicts[claim.name] = verdict
    with writing(os.path.join(workdir, "claims", png)):
      plot_claim(claim, runs, meas, os.path.join(workdir, "claims", png), floors)
    if verdict in claims_lib.WITHHELD:
      # What was measured is still shown (the members' curves), without a verdict.
      ctx = f"; {meas.context}" if meas.context else ""
      table.append(row + f"{verdict}: {why}{ctx} | **{verdict}** | – | – | {health} |")
      details += [f"### {claim.name}: {verdict}", "", f"{claim.statement} ({claim.paper}, "
                  f"{claim.source}). Setting: {setting}. Why no verdict: {why}.", "",
                  f"![{claim.name}](claims/{png})", ""]
      continue
    if claim.kind == "paper":
      pvalues[claim.name] = claims_lib.p_value(meas)
    table.append(row + f"{_measured_cell(claim, meas, parts)} | **{verdict}** | "
                 f"P:{claim.name} | {health} |")
    seed_list = sorted(set.intersection(*(set(runs.get(m.label, {})) for m in claim.members)))
    details += [f"### {claim.name}: {verdict}", "", f"{claim.statement} ({claim.paper}, "
                f"{claim.source}). Setting: {setting}. Statistic: {meas.note}"
                + (f" ({meas.context})" if meas.context else "") + ".", "",
                "| part | mean | 95% interval | verdict | per seed (" +
                ", ".join(map(str, seed_list)) + ") |", "|---|---|---|---|---|"]
    n = len(meas.values)
    v = np.asarray(meas.values, float).reshape(n, -1)
    for j, (part, _, _, pv) in enumerate(parts):
      if meas.exact:  # a count of violations per seed, not a quantity with an interval
        details.append(f"| {part} | {int(np.sum(v[:, j]))} violations | exact: every seed "
                       f"must be 0 | {pv} | " + ", ".join(
                           f"{int(x)} of {q}" for x, q in zip(v[:, j], meas.checked)) + " |")
        continue
      m, lo, hi = claims_lib.interval(meas, j)
      u = claim.unit
      ci = f"[{_num(lo, u)}, {_num(hi, u)}]" if np.isfinite(lo) else "n/a (one seed)"
      details.append(f"| {part} | {_num(m, u)} | {ci} | {pv} | "
                     + ", ".join(_num(x, u) for x in v[:, j]) + " |")
    details += ["", f"![{claim.name}](claims/{png})", ""]
  survives = claims_lib.holm(pvalues)
  for table in tables.values():
    for i, line in enumerate(table):
      for name in verdicts:
        if f"| P:{name} |" in line:
          p = pvalues.get(name)
          cell = (f"{p:.3g} | {'survives' if survives[name] else 'does not survive'}"
                  if p is not None else "– | –")
          table[i] = line.replace(f"P:{name}", cell)
  held = [n for n, p in pvalues.items() if p is not None and verdicts.get(n) == claims_lib.HOLDS]
  lines[lines.index("HOLM_SUMMARY")] = (
      f"Family-wise (Holm 5%, {sum(p is not None for p in pvalues.values())} paper claims): "
      + (", ".join(f"`{n}` {'survives' if survives[n] else 'does not survive'}" for n in held)
         if held else "no claim holds per claim") + ".")
  lines += tables["paper"]
  if len(tables["background"]) > 2:
    lines += ["", "## Background (SSL papers)", "",
              "Claims of the semi-supervised methods CRC trains with, not CRC's own (its "
              "Tables 3–6 have no supervised row): context for the CRC rows, outside the "
              "family-wise decision.", ""] + tables["background"]
  lines += ["", "Health (al_jax/health.py): a member cycle whose training accuracy stayed at "
            "chance or whose side model's loss diverged is flagged; a claim decided on "
            "flagged cycles measures a failed training, not the method."]
  if flagged:
    lines += ["", "| claim | member | seed | cycle | flags |", "|---|---|---|---|---|"]
    lines += [f"| {n} | {m} | {s} | {k} | {', '.join(f)} |" for n, m, s, k, f in flagged]
  from experiments.report import cost_section  # the members' seconds per cycle
  lines += [""] + cost_section([run.rows for run in unique])
  lines += ["", "## Per claim", ""] + details
  with writing(os.path.join(workdir, "REPRODUCTION.md")), \
      open(os.path.join(workdir, "REPRODUCTION.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  return verdicts


def _health(claim, runs) -> List:
  """(member, seed, cycle, flags) of the claim's members' flagged cycles (rows' `health`)."""
  from al_jax.health import current  # pylint: disable=g-import-not-at-top
  return [(m.label, seed, r["cycle"], flags)
          for m in claim.members for seed, run in sorted(runs.get(m.label, {}).items())
          for r in run.rows if (flags := current(r.get("health") or []))]


def reproduce(claim_names, dataset: str, seeds, workdir: str, preset: str = "cpu",
              overrides=(), data_dir: str = "", command: str = "", log=print,
              workers: int = 1) -> Dict:
  """Runs (or continues) the claims' study in `workdir/runs` and writes the ledger."""
  from al_jax import ALError
  from experiments import claims as claims_lib
  from experiments import study as study_lib
  commit = _commit()  # the code that runs, whatever the checkout becomes meanwhile
  claims = claims_lib.get_claims(claim_names, dataset)
  if not claims:
    raise ALError(f"no claim is defined for dataset {dataset!r}")
  configs = build_configs(claims, dataset, preset, seeds, overrides, data_dir)
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise ALError(f"--workdir {workdir} exists and is not a directory")
  runs_dir = os.path.join(workdir, "runs")
  twins = twin_members(configs)
  if set(twins) & _listed_in_study(runs_dir):
    twins = {}  # a ledger started when twins ran separately continues as it started
  study_configs = [c for c in configs if c.method not in twins]
  if (os.path.isdir(workdir) and set(os.listdir(workdir)) - {".xla_cache"}
      and not os.path.exists(os.path.join(runs_dir, "study.json"))):
    raise ALError(f"workdir {workdir} is not empty and holds no ledger; choose another")
  # A ledger none of whose runs started (its first invocation stopped on a setting the data
  # refuses) is started afresh, not continued.
  resume = study_lib.any_run_started(study_configs, runs_dir)
  # Every seed of a member compiles the same steps: XLA's persistent cache (in the ledger's
  # workdir) compiles them once per member instead of once per run.
  import jax
  os.makedirs(workdir, exist_ok=True)
  cache = os.path.join(os.path.abspath(workdir), ".xla_cache")
  jax.config.update("jax_compilation_cache_dir", cache)
  # Every program: JAX's default (≥ 1 s compiles only) caches almost nothing of a CPU run.
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", cache)  # --workers' processes read it
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
  log(f"ledger: {len(claims)} claims, {len(configs) // len(seeds)} members × "
      f"{len(seeds)} seeds on {dataset} ({preset}); "
      + ("continuing" if resume else "starting") + f" in {workdir}"
      + "".join(f"; {a} is the same run as {b}" for a, b in sorted(twins.items())))
  machine = _host()
  wall = WallRecord(workdir, commit=commit, machine=machine)
  # A ledger whose runs have all finished is only rewritten (on this code, from those runs):
  # the invocation adds no wall time, and the header keeps naming the commit and machine
  # that ran the runs. Only where the earlier invocations recorded both.
  rewrite = (resume and len(wall.parts) > 1 and all(wall.commits[:-1])
             and all(wall.machines[:-1]) and study_lib.all_finished(study_configs, runs_dir))
  if rewrite:
    wall.discard()
  try:
    with contextlib.nullcontext() if rewrite else wall:
      study_lib.run_study(study_configs, runs_dir, resume=resume, log=log, workers=workers)
      from experiments import report as report_lib
      report_lib.write_report(runs_dir)
  except ALError:
    if not rewrite and not study_lib.any_run_started(study_configs, runs_dir):
      wall.discard()  # nothing ran: the invocation leaves no wall time in the ledger
    raise
  if rewrite:
    return write_ledger(workdir, claims, configs, command, wall.commits[-1],
                        wall=wall.describe(), commits=wall.describe_commits(),
                        machine=wall.machines[-1], machines=wall.describe_machines(),
                        twins=twins, rewritten_by=commit)
  return write_ledger(workdir, claims, configs, command, commit, wall=wall.describe(),
                      commits=wall.describe_commits(), machine=machine,
                      machines=wall.describe_machines(), twins=twins)


class WallRecord:
  """This invocation's wall time in the ledger's W/ledger_wall.json, beside the earlier
  invocations': a ledger stopped and continued sums them. The entry is rewritten every
  `every` seconds while the study runs, so an invocation that is killed (SIGKILL, the
  documented way to stop a ledger) still counts up to its last rewrite."""

  def __init__(self, workdir: str, every: float = 30.0, commit: str = "", machine: str = ""):
    from al_jax.results import atomic_write
    self._atomic_write = atomic_write
    self.path = os.path.join(workdir, "ledger_wall.json")
    self.every = every
    self.parts: List[float] = []
    # The commit and the machine (`results.host_info`) of each invocation: its runs came from
    # that code, on that CPU. "" where not recorded (ledgers older than the record).
    self.commits: List[str] = []
    self.machines: List[str] = []
    if os.path.exists(self.path):
      try:
        with open(self.path) as f:
          saved = json.load(f)
        self.parts = [float(x) for x in saved["invocations"]]
        pad = lambda xs: ([str(x or "") for x in xs] + [""] * len(self.parts))[:len(self.parts)]
        self.commits = pad(saved.get("commits", []))
        self.machines = pad(saved.get("machines", []))
      except (OSError, ValueError, KeyError, TypeError, AttributeError):
        self.parts, self.commits, self.machines = [], [], []
    self.parts.append(0.0)
    self.commits.append(commit)
    self.machines.append(machine)
    self._t0 = time.time()
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._tick, daemon=True)

  def _write(self) -> None:
    self.parts[-1] = round(time.time() - self._t0, 1)
    self._save()

  def _save(self) -> None:
    self._atomic_write(self.path, json.dumps({"invocations": self.parts,
                                              "commits": self.commits,
                                              "machines": self.machines}))

  def _tick(self) -> None:
    while not self._stop.wait(self.every):
      self._write()

  def __enter__(self) -> "WallRecord":
    self._write()
    self._thread.start()
    return self

  def __exit__(self, *exc) -> None:
    self._stop.set()
    self._thread.join()
    self._write()

  def discard(self) -> None:
    """Drops this invocation's entry (after `__exit__`): the file goes when none is left."""
    self.parts, self.commits, self.machines = (self.parts[:-1], self.commits[:-1],
                                               self.machines[:-1])
    if self.parts:
      self._save()
    elif os.path.exists(self.path):
      os.remove(self.path)

  def describe(self) -> str:
    total, n = sum(self.parts), len(self.parts)
    return f"{total / 60:.1f} min" + (f" over {n} invocations (stopped and continued)"
                                      if n > 1 else "")

  def describe_commits(self) -> str:
    """The commits earlier invocations ran, where they differ from this one's ("" if none):
    a ledger continued on newer code holds runs of both."""
    return _spans(self.commits, lambda c: f"`{c}`" if c else "commit not recorded")

  def describe_machines(self) -> str:
    """The machines earlier invocations ran on, where they differ ("" if none): a ledger
    continued on another CPU holds runs whose last digits depend on the CPU."""
    return _spans(self.machines, lambda m: m or "machine not recorded")


def _spans(values: Sequence[str], show) -> str:
  """"invocations 1–2: a; invocation 3: b" for per-invocation values, "" if all are equal."""
  runs: List[List] = []  # [value, first invocation, last invocation]
  for i, v in enumerate(values, 1):
    if runs and runs[-1][0] == v:
      runs[-1][2] = i
    else:
      runs.append([v, i, i])
  if len(runs) < 2:
    return ""
  span = lambda a, b: f"invocation {a}" if a == b else f"invocations {a}–{b}"
  return "; ".join(f"{span(a, b)}: {show(v)}" for v, a, b in runs)


def main(argv):
  if len(argv) > 1:
    cli.fail(f"unexpected arguments: {' '.join(argv[1:])}")
  from al_jax import ALError
  from experiments import claims as claims_lib
  if FLAGS.list:
    for c in claims_lib.CLAIMS:
      where = f" [{', '.join(c.datasets)} only]" if c.datasets else ""
      print(f"{c.name:<30} {c.paper}, {c.source}: {c.statement}{where}")
    return
  import logging as std_logging
  from absl import logging
  logging.set_verbosity(logging.WARNING)
  log = std_logging.getLogger("al_jax")
  handler = std_logging.StreamHandler(sys.stdout)
  handler.setFormatter(std_logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
  log.addHandler(handler)
  log.setLevel(std_logging.INFO)
  log.propagate = False
  try:
    if not FLAGS.workdir:
      raise ALError("--workdir is required (the ledger's runs and REPRODUCTION.md go there)")
    cli.check_dir_or_new("--workdir", FLAGS.workdir)
    seeds = cli.parse_seeds(FLAGS.seeds)
    from experiments.configs import parse_set
    command = "python -m experiments.reproduce " + " ".join(a for a in sys.argv[1:])
    t0 = time.time()
    verdicts = reproduce(FLAGS.claims, FLAGS.dataset, seeds, FLAGS.workdir, FLAGS.preset,
                         parse_set(FLAGS.set), FLAGS.data_dir, command, log=log.info,
                         workers=FLAGS.workers)
  except ALError as e:
    cli.fail(e)
  for name, v in verdicts.items():
    print(f"{name:<30} {v}")
  print(f"wrote {os.path.join(FLAGS.workdir, 'REPRODUCTION.md')} ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
  define_flags()
  cli.run(main)
