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

import datetime
import os
import subprocess
import sys
import time
from typing import Dict, List, Sequence

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


def load_member_runs(runs_dir: str, configs) -> Dict:
  """label → seed → claims.Run, for finished runs only."""
  from al_jax import results as results_lib
  from experiments import claims as claims_lib
  from experiments.study import run_dirname
  out: Dict = {}
  for c in configs:
    path = os.path.join(runs_dir, run_dirname(c.method, c.seed))
    wd = results_lib.Workdir(path)
    rows = wd.read_results() if wd.holds_experiment() else []
    if len(rows) >= c.al.cycles:
      out.setdefault(c.method, {})[c.seed] = claims_lib.Run(rows[:c.al.cycles], path)
  return out


def _fmt(m: float, h: float, unit: str) -> str:
  half = f" ± {h:.4f}" if np.isfinite(h) else ""
  return f"{m:+.4f}{half}" if unit.startswith("Δ") else f"{m:.4f}{half}"


def _setting(claim, configs_by_label) -> str:
  parts = []
  for m in claim.members:
    c = configs_by_label[m.label]
    extra = [f"protocol {m.protocol}"] if m.protocol else []
    extra += [f"schedule of {m.schedule_of}"] if m.schedule_of else []
    extra += [f"{k}={v}" for k, v in m.overrides]
    parts.append(f"`{m.label}`" + (f" ({', '.join(extra)})" if extra else ""))
  return " vs ".join(parts) + "; " + "; ".join(
      f"`{m.label}`: {_describe(configs_by_label[m.label])}" for m in claim.members)


def _describe(c) -> str:
  """What a reader needs to see that two members differ only in what a claim compares:
  model, optimiser, schedule, labels and training length."""
  sched = c.optim.schedule + (f"@{tuple(c.optim.milestones)}" if c.optim.schedule == "step"
                              else "")
  warm = "warm start" if c.train.warm_start else "from scratch"
  return (f"{c.model.name}, {c.optim.name} {c.optim.lr:g} {sched}, batch {c.train.batch_size}, "
          f"{c.al.initial} + {c.al.budget} × {c.al.cycles - 1} labels, {c.train.epochs} "
          f"epochs × ≥ {c.train.min_steps_per_epoch} steps, {warm}")


def plot_claim(claim, runs, meas, path: str) -> None:
  """The members' accuracy curves, or the claim's statistic per part (cycle)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(6.0, 4.0), dpi=110)
  if claim.plot == "accuracy":
    for m in claim.members:
      seeds = sorted(runs.get(m.label, {}))
      if not seeds:
        continue
      k = min(len(runs[m.label][s].rows) for s in seeds)
      acc = np.array([runs[m.label][s].column("test_accuracy")[:k] for s in seeds])
      lab = runs[m.label][seeds[0]].labels[:k]
      line, = ax.plot(lab, acc.mean(0), marker="o", ms=3, label=f"{m.label} (n={len(seeds)})")
      if len(seeds) > 1:
        sd = acc.std(0, ddof=1)
        ax.fill_between(lab, acc.mean(0) - sd, acc.mean(0) + sd, color=line.get_color(),
                        alpha=0.2)
    ax.set_xlabel("number of labeled training images")
    ax.set_ylabel("test accuracy")
  else:
    v = np.asarray(meas.values, float).reshape(len(meas.values), -1)
    x = np.arange(v.shape[1])
    for s, row in enumerate(v):
      ax.plot(x, row, color="0.7", lw=1)
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


def write_ledger(workdir: str, claims, configs, command: str, commit: str = "") -> Dict:
  """Decides every claim on the finished runs and writes REPRODUCTION.md; returns verdicts."""
  from experiments import claims as claims_lib
  runs_dir = os.path.join(workdir, "runs")
  runs = load_member_runs(runs_dir, configs)
  seconds = sum(r["train_seconds"] + r["query_seconds"]
                for seeds in runs.values() for run in seeds.values() for r in run.rows)
  by_label = {c.method: c for c in configs}
  from al_jax.writes import writing
  with writing(os.path.join(workdir, "claims")):
    os.makedirs(os.path.join(workdir, "claims"), exist_ok=True)
  c0 = configs[0]
  seeds = sorted({c.seed for c in configs})
  lines = [f"# Reproduction ledger: {c0.dataset}, {c0.preset} preset", "",
           f"Command: `{command}`  ", f"Commit: `{commit or _commit()}`  ",
           f"Seeds: {', '.join(map(str, seeds))}; written "
           f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; member "
           f"training + query time {seconds / 60:.1f} min (sum over runs).", "",
           "Each value is the mean over seeds with a 95% Student-t interval. A claim **holds** "
           "when the interval lies beyond its threshold in the claimed direction, **does not "
           "hold** when it lies on the other side, and is **inconclusive** when it straddles "
           "the threshold; \"at every cycle\" claims need every cycle to hold; an exact claim "
           "must hold on every seed. Every member's learning curve, with the linear-probe "
           "floor, is in [runs/report.md](runs/report.md). The ledger decides many claims at "
           "once: *p* is each claim's one-sided p-value (t over seeds; an \"at every cycle\" "
           "claim takes its largest part's), and **Holm 5%** says whether its verdict survives "
           "the Holm–Bonferroni correction over every claim of this ledger that has one.",
           "HOLM_SUMMARY", "",
           "| claim | paper | source | statement | setting | measured | verdict | p | "
           "Holm 5% | health |",
           "|---|---|---|---|---|---|---|---|---|---|"]
  details, verdicts, flagged, pvalues = [], {}, [], {}
  for claim in claims:
    setting = _setting(claim, by_label)
    sick = _health(claim, runs)
    flagged += [(claim.name, *f) for f in sick]
    health = f"⚑ {len(sick)} flagged cycle(s)" if sick else "ok"
    try:
      meas = claim.statistic(runs)
    except (ValueError, FileNotFoundError) as e:
      verdicts[claim.name] = "not measured"
      lines.append(f"| {claim.name} | {claim.paper} | {claim.source} | {claim.statement} | "
                   f"{setting} | not measured: {e} | not measured | – | – | {health} |")
      continue
    verdict, parts = claims_lib.decide(meas)
    verdicts[claim.name] = verdict
    if verdict == claims_lib.NOT_MEASURED:
      lines.append(f"| {claim.name} | {claim.paper} | {claim.source} | {claim.statement} | "
                   f"{setting} | not measured: {claims_lib.why_not_measured(meas)} | "
                   f"not measured | – | – | {health} |")
      # The members' curves are still shown: what was measured, without a verdict.
      plot_claim(claim, runs, meas, os.path.join(workdir, "claims", f"{claim.name}.png"))
      continue
    n = len(meas.values)
    worst = min(parts, key=lambda p: (p[1] - (p[2] if np.isfinite(p[2]) else 0))
                if meas.greater else -(p[1] + (p[2] if np.isfinite(p[2]) else 0)))
    shown = (f"{claim.unit} {_fmt(worst[1], worst[2], claim.unit)}" +
             (f" (worst of {len(parts)}: {worst[0]})" if len(parts) > 1 else "") +
             f", {n} seeds; threshold {'>' if meas.greater else '<'} {meas.threshold:g}"
             if not meas.exact else
             f"{claim.unit} per seed: "
             + ", ".join(f"{int(b)} of {q}" for b, q in zip(np.ravel(meas.values),
                                                        meas.checked))
             + " queried images (must be 0)")
    pvalues[claim.name] = claims_lib.p_value(meas)
    lines.append(f"| {claim.name} | {claim.paper} | {claim.source} | {claim.statement} | "
                 f"{setting} | {shown} | **{verdict}** | P:{claim.name} | {health} |")
    png = f"{claim.name}.png"
    with writing(os.path.join(workdir, "claims", png)):
      plot_claim(claim, runs, meas, os.path.join(workdir, "claims", png))
    seed_list = sorted(set.intersection(*(set(runs.get(m.label, {})) for m in claim.members)))
    details += [f"### {claim.name}: {verdict}", "", f"{claim.statement} ({claim.paper}, "
                f"{claim.source}). Setting: {setting}. Statistic: {meas.note}.", "",
                "| part | mean | 95% interval | verdict | per seed (" +
                ", ".join(map(str, seed_list)) + ") |", "|---|---|---|---|---|"]
    v = np.asarray(meas.values, float).reshape(n, -1)
    for j, (part, m, h, pv) in enumerate(parts):
      ci = f"[{m - h:+.4f}, {m + h:+.4f}]" if np.isfinite(h) else "n/a (one seed)"
      if meas.exact:  # a count of violations per seed, not a quantity with an interval
        details.append(f"| {part} | {int(np.sum(v[:, j]))} violations | exact: every seed "
                       f"must be 0 | {pv} | " + ", ".join(
                           f"{int(x)} of {q}" for x, q in zip(v[:, j], meas.checked)) + " |")
        continue
      details.append(f"| {part} | {m:+.4f} | {ci} | {pv} | "
                     + ", ".join(f"{x:+.4f}" for x in v[:, j]) + " |")
    details += ["", f"![{claim.name}](claims/{png})", ""]
  survives = claims_lib.holm(pvalues)
  for i, line in enumerate(lines):
    for name, p in pvalues.items():
      if f"| P:{name} |" in line:
        cell = (f"{p:.3g} | {'survives' if survives[name] else 'does not survive'}"
                if p is not None else "– (exact) | –")
        lines[i] = line.replace(f"P:{name}", cell)
  held = [n for n, p in pvalues.items() if p is not None and verdicts.get(n) == claims_lib.HOLDS]
  lines[lines.index("HOLM_SUMMARY")] = (
      f"Family-wise (Holm 5%, {sum(p is not None for p in pvalues.values())} claims): "
      + (", ".join(f"`{n}` {'survives' if survives[n] else 'does not survive'}" for n in held)
         if held else "no claim holds per claim") + ".")
  lines += ["", "Health (al_jax/health.py): a member cycle whose training accuracy stayed at "
            "chance or whose side model's loss diverged is flagged; a claim decided on "
            "flagged cycles measures a failed training, not the method."]
  if flagged:
    lines += ["", "| claim | member | seed | cycle | flags |", "|---|---|---|---|---|"]
    lines += [f"| {n} | {m} | {s} | {k} | {', '.join(f)} |" for n, m, s, k, f in flagged]
  from experiments.report import cost_section  # the members' seconds per cycle
  lines += [""] + cost_section([r.rows for by_seed in runs.values() for r in by_seed.values()])
  lines += ["", "## Per claim", ""] + details
  with writing(os.path.join(workdir, "REPRODUCTION.md")), \
      open(os.path.join(workdir, "REPRODUCTION.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  return verdicts


def _health(claim, runs) -> List:
  """(member, seed, cycle, flags) of the claim's members' flagged cycles (rows' `health`)."""
  return [(m.label, seed, r["cycle"], list(r["health"]))
          for m in claim.members for seed, run in sorted(runs.get(m.label, {}).items())
          for r in run.rows if r.get("health")]


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
  if (os.path.isdir(workdir) and set(os.listdir(workdir)) - {".xla_cache"}
      and not os.path.exists(os.path.join(runs_dir, "study.json"))):
    raise ALError(f"workdir {workdir} is not empty and holds no ledger; choose another")
  resume = os.path.exists(os.path.join(runs_dir, "study.json"))
  # Every seed of a member compiles the same steps: XLA's persistent cache (in the ledger's
  # workdir) compiles them once per member instead of once per run.
  import jax
  os.makedirs(workdir, exist_ok=True)
  cache = os.path.join(os.path.abspath(workdir), ".xla_cache")
  jax.config.update("jax_compilation_cache_dir", cache)
  os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", cache)  # --workers' processes read it
  log(f"ledger: {len(claims)} claims, {len(configs) // len(seeds)} members × "
      f"{len(seeds)} seeds on {dataset} ({preset}); "
      + ("continuing" if resume else "starting") + f" in {workdir}")
  study_lib.run_study(configs, runs_dir, resume=resume, log=log, workers=workers)
  from experiments import report as report_lib
  report_lib.write_report(runs_dir)
  return write_ledger(workdir, claims, configs, command, commit)


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
    if not seeds:
      raise ALError("--seeds is empty")
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
