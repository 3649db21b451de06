"""ARAL's central claim, measured: does co-training with unlabeled and generated images help?

Trains the same discriminator classifier C = c_cl(D̃(x)) (the cpu preset's Gaussian-noise MLP)
twice on the same class-balanced labeled set: with ARAL's full objective (labeled +
unlabeled + generated images, Eqs. 5–13) and with cross-entropy on the labeled images alone
(`--objective=supervised`, same network, optimiser, batches and steps). One training round
(cycle 0, no acquisition), per seed; prints test accuracy per seed and mean ± std.

    python -m experiments.aral_claim --dataset=digits --labels_per_class=10 --seeds=0,1,2
"""

import time

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("dataset", "digits", "Dataset (cpu preset).")
flags.DEFINE_integer("labels_per_class", 10, "Class-balanced labeled set size per class.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds (initial pool, init, batches).")
flags.DEFINE_multi_string("set", [], "Extra config overrides key=value for both runs.")


def _config(objective: str, seed: int):
  import ast
  import ml_collections
  from experiments.configs import cpu, get_config
  c = get_config("aral", FLAGS.dataset, "cpu")
  c.seed = seed
  c.objective = objective
  if objective != "aral":
    c.acquisition = "random"  # never used: one cycle, no selection
    c.objective_kwargs = ml_collections.ConfigDict()  # ARAL's loss weights do not apply
  c.al.cycles = 1
  c.al.class_balanced = True
  c.al.initial = FLAGS.labels_per_class * 10
  for item in FLAGS.set:
    key, raw = item.split("=", 1)
    try:
      value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
      value = raw
    cpu.apply_overrides(c, {key: value})
  return c


def main(argv):
  del argv
  from al_jax import loop
  rows = []
  for seed in [int(s) for s in FLAGS.seeds]:
    accs = {}
    for objective in ("aral", "supervised"):
      t = time.time()
      out = loop.run(_config(objective, seed), None, log=lambda s: None)
      accs[objective] = out[0]["test_accuracy"]
      print(f"seed {seed} {objective:10s} test accuracy {accs[objective]:.4f} "
            f"({time.time() - t:.0f} s)", flush=True)
    rows.append((seed, accs["aral"], accs["supervised"]))
  a = np.array([r[1] for r in rows])
  s = np.array([r[2] for r in rows])
  n = FLAGS.labels_per_class * 10
  print(f"\n{FLAGS.dataset}, {n} labels ({FLAGS.labels_per_class} per class), same "
        "discriminator classifier (noisy_mlp)")
  print("| seed | ARAL (labeled + unlabeled + generated) | labeled only | difference |")
  print("|---|---|---|---|")
  for seed, x, y in rows:
    print(f"| {seed} | {x:.4f} | {y:.4f} | {x - y:+.4f} |")
  print(f"| mean ± std | {a.mean():.4f} ± {a.std(ddof=1) if len(a) > 1 else 0:.4f} | "
        f"{s.mean():.4f} ± {s.std(ddof=1) if len(s) > 1 else 0:.4f} | "
        f"{(a - s).mean():+.4f} |")
  print(f"ARAL better on {int(np.sum(a > s))}/{len(a)} seeds")


if __name__ == "__main__":
  app.run(main)
