"""ARAL's central claim, measured: does co-training with unlabeled and generated images help?

Trains the same discriminator classifier C = c_cl(D̃(x)) (the cpu preset's Gaussian-noise MLP)
twice on the same class-balanced labeled set: with ARAL's full objective (labeled +
unlabeled + generated images, Eqs. 5–13) and with cross-entropy on the labeled images alone
(the `aral_labels_only` method: same network, batches and steps, its own tuned optimiser).
One training round (cycle 0, no acquisition), per seed; prints test accuracy per seed and
mean ± std.

    python -m experiments.aral_claim --dataset=digits --labels_per_class=10 --seeds=0,1,2

`--baseline_optim=aral` trains the baseline with ARAL's discriminator optimiser instead (Adam
3e-3, β = (0.5, 0.9999), tuned for the GAN game), `both` reports the two. `--tune` sweeps the
baseline's Adam settings on a validation split carved from the training set (never the test
set), over seeds distinct from the evaluation seeds, and prints validation accuracy per setting.
"""

import itertools
import time

import numpy as np
from absl import flags

from experiments import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("dataset", "digits", "Dataset (cpu preset).")
flags.DEFINE_string("data_dir", None, "TFDS data directory (as experiments.main's).")
flags.DEFINE_integer("labels_per_class", 10, "Class-balanced labeled set size per class.",
                     lower_bound=1)
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds (initial pool, init, batches).")
flags.DEFINE_multi_string("set", [], "Extra config overrides key=value for both runs.")
flags.DEFINE_enum("baseline_optim", "own", ["own", "aral", "both"],
                  "Baseline optimiser: its own tuned one (aral_labels_only preset), ARAL's "
                  "discriminator optimiser, or both.")
flags.DEFINE_bool("tune", False, "Sweep the baseline's Adam settings on a validation split.")
flags.DEFINE_list("tune_seeds", ["100", "101"], "Seeds of the tuning runs.")
flags.DEFINE_integer("val_size", 300, "Validation split size for --tune.", lower_bound=1)

# The sweep of --tune: Adam learning rate × β₁ × β₂.
TUNE_GRID = {"optim.lr": (3e-4, 1e-3, 3e-3), "optim.b1": (0.5, 0.9), "optim.b2": (0.999, 0.9999)}


# The dataset's class count, read when check_flags loads it (10 before: the checks that need
# no data run first).
_NUM_CLASSES = [10]


def _config(method: str, seed: int, optim_from_aral: bool = False, extra=()):
  """The method's cpu preset with this harness's settings, then --set, then `extra`, resolved
  (derived values and ranges) as any run's."""
  from experiments.configs import get_config, parse_set, resolve
  over = []
  if optim_from_aral:
    over += [(f"optim.{k}", v) for k, v in get_config("aral", FLAGS.dataset, "cpu")
             .optim.to_dict().items()]
  over += [("seed", seed), ("al.cycles", 1), ("al.class_balanced", True),
           ("al.initial", FLAGS.labels_per_class * _NUM_CLASSES[0])]
  if FLAGS.data_dir:
    over.append(("data_dir", FLAGS.data_dir))
  # Unknown keys and malformed items: one-line ALError.
  over += parse_set(FLAGS.set) + list(extra)
  return resolve(method, FLAGS.dataset, "cpu", overrides=over).config


def _tune():
  from al_jax import loop
  keys, values = zip(*TUNE_GRID.items())
  print(f"| {' | '.join(keys)} | validation accuracy (mean over seeds {FLAGS.tune_seeds}) |")
  print("|" + "---|" * (len(keys) + 1))
  best = None
  for combo in itertools.product(*values):
    accs = []
    for seed in [int(s) for s in FLAGS.tune_seeds]:
      c = _config("aral_labels_only", seed,
                  extra=[("al.val_size", FLAGS.val_size), *zip(keys, combo)])
      learner = loop.ActiveLearner(c, None, log=lambda s: None)
      state = learner.train(0, learner.initial_pool())
      accs.append(learner.evaluate(state, learner.x_val, learner.y_val)["accuracy"])
    acc = float(np.mean(accs))
    print(f"| {' | '.join(str(v) for v in combo)} | {acc:.4f} |", flush=True)
    if best is None or acc > best[0]:
      best = (acc, combo)
  print(f"best: {dict(zip(keys, best[1]))} ({best[0]:.4f})")


def check_flags():
  """Every run's settings, checked before the first one trains (one-line ALError)."""
  import os
  from al_jax import ALError
  FLAGS.seeds = [str(s) for s in cli.parse_seeds(FLAGS.seeds)]
  FLAGS.tune_seeds = [str(s) for s in cli.parse_seeds(FLAGS.tune_seeds, "--tune_seeds")]
  if FLAGS.data_dir and os.path.exists(FLAGS.data_dir) and not os.path.isdir(FLAGS.data_dir):
    raise ALError(f"--data_dir={FLAGS.data_dir} exists and is not a directory")
  def configs():
    out = []
    for method, from_aral in (("aral", False), ("aral_labels_only", False),
                              ("aral_labels_only", True)):
      c = _config(method, int((FLAGS.tune_seeds if FLAGS.tune else FLAGS.seeds)[0]), from_aral)
      if FLAGS.tune:
        c.al.val_size = FLAGS.val_size
      out.append(c)
    return out
  configs()
  # jax, flax and the data load only once the checks that need neither have passed, so a
  # mistyped flag fails at once (as experiments.main's do).
  from al_jax import loop
  from al_jax.data import DATASETS
  ds = DATASETS.get(FLAGS.dataset)(data_dir=FLAGS.data_dir or None, seed=0)
  _NUM_CLASSES[0] = ds.num_classes
  if FLAGS.tune and FLAGS.val_size >= len(ds.y_train):
    raise ALError(f"--val_size={FLAGS.val_size} leaves no training images of the "
                  f"{len(ds.y_train)} in {FLAGS.dataset}")
  for c in configs():
    loop.validate(c, len(ds.y_train) - c.al.val_size)


def main(argv):
  from al_jax import ALError
  if len(argv) > 1:
    cli.fail(f"unexpected arguments: {' '.join(argv[1:])}")
  try:
    check_flags()
    if FLAGS.tune:
      return _tune()
    from al_jax import loop
    _compare(loop)
  except ALError as e:
    cli.fail(e)


def _compare(loop):
  baselines = {"own": [("labels only", False)], "aral": [("labels only, ARAL's D optimiser", True)],
               "both": [("labels only", False), ("labels only, ARAL's D optimiser", True)]}[
                   FLAGS.baseline_optim]
  rows = []
  for seed in [int(s) for s in FLAGS.seeds]:
    accs = {}
    for name, method, from_aral in [("ARAL", "aral", False)] + [
        (n, "aral_labels_only", f) for n, f in baselines]:
      t = time.time()
      out = loop.run(_config(method, seed, from_aral), None, log=lambda s: None)
      accs[name] = out[0]["test_accuracy"]
      print(f"seed {seed} {name:34s} test accuracy {accs[name]:.4f} ({time.time() - t:.0f} s)",
            flush=True)
    rows.append(accs)
  n = FLAGS.labels_per_class * _NUM_CLASSES[0]
  print(f"\n{FLAGS.dataset}, {n} labels ({FLAGS.labels_per_class} per class), same "
        "discriminator classifier (noisy_mlp)")
  a = np.array([r["ARAL"] for r in rows])
  sd = lambda v: v.std(ddof=1) if len(v) > 1 else 0.0
  for name, _ in baselines:
    s = np.array([r[name] for r in rows])
    print(f"\nARAL vs {name}")
    print(f"| seed | ARAL | {name} | difference |")
    print("|---|---|---|---|")
    for seed, x, y in zip(FLAGS.seeds, a, s):
      print(f"| {seed} | {x:.4f} | {y:.4f} | {x - y:+.4f} |")
    d = a - s
    print(f"| mean ± std | {a.mean():.4f} ± {sd(a):.4f} | {s.mean():.4f} ± {sd(s):.4f} | "
          f"{d.mean():+.4f} ± {sd(d):.4f} |")
    print(f"ARAL better on {int(np.sum(a > s))}/{len(a)} seeds")


if __name__ == "__main__":
  cli.run(main)
