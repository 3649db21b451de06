"""Semi-supervised vs supervised training on `digits` with few class-balanced labels.

    python -m experiments.ssl_digits            # 50 labels, seeds 0,1,2, one cycle each

Trains the cpu preset's small CNN once per (objective, seed) on the same class-balanced
labeled set (it depends only on the seed) and the same number of optimiser steps, and
prints test accuracy mean ± std over seeds: supervised (`random`), Mean Teacher
(`random_mt`) and FixMatch (`random_fixmatch`), each with its cpu-preset settings.
"""

import time

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
flags.DEFINE_integer("labels", 50, "Class-balanced labeled images.")
flags.DEFINE_integer("epochs", 40, "Epochs (each at least `min_steps` steps).")
flags.DEFINE_integer("min_steps", 10, "Minimum steps per epoch, for every objective.")
flags.DEFINE_list("methods", ["random", "random_mt", "random_fixmatch"], "Methods to run.")

OBJECTIVE_OF = {"random": "supervised", "random_mt": "mean_teacher",
                "random_fixmatch": "fixmatch"}


def run_one(method, seed, labels, epochs, min_steps):
  from al_jax.loop import ActiveLearner
  from experiments.configs import cpu, get_config
  cfg = get_config(method, "digits", "cpu")
  cpu.apply_overrides(cfg, {"al.initial": labels, "al.class_balanced": True, "al.cycles": 1,
                            "train.epochs": epochs, "train.min_steps_per_epoch": min_steps,
                            "log_every": 1000})
  if method == "random_mt":  # ramp-up over 40% of the steps, as the cpu preset
    cfg.objective_kwargs.rampup_steps = int(0.4 * epochs * min_steps)
  cfg.seed = seed
  t = time.time()
  row = ActiveLearner(cfg, workdir=None, log=lambda s: None).run()[0]
  return row["test_accuracy"], time.time() - t


def main(argv):
  del argv
  seeds = [int(s) for s in FLAGS.seeds]
  results = {}
  for method in FLAGS.methods:
    for seed in seeds:
      acc, secs = run_one(method, seed, FLAGS.labels, FLAGS.epochs, FLAGS.min_steps)
      results.setdefault(method, []).append(acc)
      print(f"{method:<16} seed {seed}: test accuracy {acc:.4f} ({secs:.0f} s)", flush=True)
  print(f"\ndigits, {FLAGS.labels} class-balanced labels, {FLAGS.epochs} epochs × "
        f">= {FLAGS.min_steps} steps, seeds {seeds}")
  print("| objective | test accuracy (mean ± std) | per seed |")
  print("|---|---|---|")
  for method, accs in results.items():
    print(f"| {OBJECTIVE_OF.get(method, method)} | {np.mean(accs):.4f} ± {np.std(accs):.4f} | "
          + ", ".join(f"{a:.4f}" for a in accs) + " |")


if __name__ == "__main__":
  app.run(main)
