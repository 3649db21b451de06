"""The linear-probe floor: logistic regression on raw pixels of random labeled images.

An AL study is only informative when its classifier learns more from the labels than a linear
model would: a network that trails logistic regression on the same number of random labels is
under-trained, and methods compared on it rank differently than in the papers' regime. Every
study report (`experiments.report`) shows this floor beside the methods' curves.

    python -m experiments.floors --dataset=fashion_mnist --labels=100,200,300,400,500 \\
        --seeds=0,1,2
    # per label count: mean ± std test accuracy of LogisticRegression(max_iter=2000)

    python -m experiments.floors --workdir=W
    # per method and label count of the runs in study W: the model's test accuracy, the
    # probe's on the *same* labeled images (each cycle's pools/cycle_K.npy), and the margin

Seed s labels the first n images of one random permutation of the training set (drawn from
`numpy.random.default_rng([s, n_train])`), so the label sets of one seed are nested, as an
AL run's are. Pixels are scaled to [0, 1]; the test set is the dataset's full test split.
"""

import json
import os
from typing import Dict, List, Sequence, Tuple

import numpy as np
from absl import flags

from experiments import cli


def _flat(x: np.ndarray) -> np.ndarray:
  return x.reshape(len(x), -1).astype(np.float32) / 255.0


def _fit_probe(x_train, y_train, x_test, y_test, idx) -> float:
  import warnings
  from sklearn.exceptions import ConvergenceWarning
  from sklearn.linear_model import LogisticRegression
  if len(np.unique(y_train[idx])) < 2:
    return float(np.mean(y_test == y_train[idx[0]]))
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    clf = LogisticRegression(max_iter=2000).fit(x_train[idx], y_train[idx])
  return float(np.mean(clf.predict(x_test) == y_test))


def linear_probe(dataset, labels: Sequence[int], seeds: Sequence[int]) -> Dict[int, list]:
  """{label count: [test accuracy per seed]} of logistic regression on random labels."""
  x_train, x_test = _flat(dataset.x_train), _flat(dataset.x_test)
  out = {int(n): [] for n in labels}
  for s in seeds:
    perm = np.random.default_rng([int(s), len(x_train)]).permutation(len(x_train))
    for n in out:
      out[n].append(_fit_probe(x_train, dataset.y_train, x_test, dataset.y_test, perm[:n]))
  return out


def cached_linear_probe(workdir: str, dataset_name: str, labels: Sequence[int],
                        seeds: Sequence[int], data_dir: str = "") -> Dict[int, list]:
  """`linear_probe`, cached in `workdir/floors.json` (keyed by dataset, labels and seeds)."""
  path = os.path.join(workdir, "floors.json")
  key = {"dataset": dataset_name, "labels": sorted(int(n) for n in labels),
         "seeds": sorted(int(s) for s in seeds)}
  if os.path.exists(path):
    try:
      with open(path) as f:
        cached = json.load(f)
      if cached.get("key") == key:
        return {int(n): v for n, v in cached["floors"].items()}
    except (OSError, ValueError, KeyError):
      pass
  from al_jax.data import DATASETS
  ds = DATASETS.get(dataset_name)(data_dir=data_dir or None, seed=0)
  floors = linear_probe(ds, key["labels"], key["seeds"])
  from al_jax.results import atomic_write
  atomic_write(path, json.dumps({"key": key, "floors": floors}, indent=2))
  return floors


def same_label_margins(workdir: str, data_dir: str = "") -> Tuple[List[Dict], List[str]]:
  """The probe fitted on each finished cycle's own labeled set, beside the model's accuracy.

  The floor above draws its own random labels; this one reads a study's runs and fits the
  probe on exactly the images each cycle trained on (`pools/cycle_K.npy`), so the margin
  compares two learners on identical data.

  Returns:
    (rows, skipped): one row per run and cycle with method, seed, num_labeled,
    model_accuracy and probe_accuracy; and the run directories left out, with why.
  """
  from al_jax.data import DATASETS
  rows, skipped, data = [], [], {}
  for dirpath, _, files in sorted(os.walk(workdir)):
    if "results.jsonl" not in files or "config.json" not in files:
      continue
    with open(os.path.join(dirpath, "config.json")) as f:
      config = json.load(f)["config"]
    if config["al"].get("val_size", 0) or config["al"].get("full_labels", False):
      skipped.append(f"{dirpath} (a validation split or full labels: not random labels "
                     "from the training set alone)")
      continue
    name = config["dataset"]
    if name not in data:
      ds = DATASETS.get(name)(data_dir=data_dir or None, seed=0)
      data[name] = (_flat(ds.x_train), ds.y_train, _flat(ds.x_test), ds.y_test)
    x_train, y_train, x_test, y_test = data[name]
    with open(os.path.join(dirpath, "results.jsonl")) as f:
      results = [json.loads(line) for line in f if line.strip()]
    for r in results:
      pool = os.path.join(dirpath, "pools", f"cycle_{r['cycle']}.npy")
      if not os.path.exists(pool):
        continue
      # A repeated pool (al.pool_copies) holds image i at i, i + N, ...
      idx = np.load(pool) % len(y_train)
      rows.append({"method": r["method"], "seed": r["seed"], "num_labeled": r["num_labeled"],
                   "model_accuracy": r["test_accuracy"],
                   "probe_accuracy": _fit_probe(x_train, y_train, x_test, y_test, idx)})
  return rows, skipped


def _print_margins(rows: List[Dict]) -> None:
  groups: Dict[Tuple[str, int], List[Dict]] = {}
  for r in rows:
    groups.setdefault((r["method"], r["num_labeled"]), []).append(r)
  print(f"{'method':<24} {'labels':>6} {'model':>7} {'probe':>7} {'margin':>7}  per seed (points)")
  for (method, n), rs in sorted(groups.items()):
    rs = sorted(rs, key=lambda r: r["seed"])
    d = [100 * (r["model_accuracy"] - r["probe_accuracy"]) for r in rs]
    print(f"{method:<24} {n:>6} {np.mean([r['model_accuracy'] for r in rs]):>7.4f} "
          f"{np.mean([r['probe_accuracy'] for r in rs]):>7.4f} {np.mean(d):>+7.1f}  "
          + ", ".join(f"seed {r['seed']} {x:+.1f}" for r, x in zip(rs, d)))


FLAGS = flags.FLAGS


def define_flags():
  """The command-line flags, defined only when this module runs as a program, so that
  modules importing it (the ledger imports the report) keep their own flags."""
  flags.DEFINE_string("dataset", "digits", "Dataset name.")
  flags.DEFINE_string("data_dir", "", "TFDS data directory.")
  flags.DEFINE_list("labels", ["40", "80", "120", "160", "200"], "Label counts.")
  flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
  flags.DEFINE_string("workdir", "", "A run or study: fit the probe on each finished "
                      "cycle's own labels and print the model's margin over it.")


def main(argv):
  from al_jax import ALError
  if len(argv) > 1:
    cli.fail(f"unexpected arguments: {' '.join(argv[1:])}")
  if FLAGS.workdir:
    if not os.path.isdir(FLAGS.workdir):
      cli.fail(f"--workdir {FLAGS.workdir} is not a directory")
    try:
      rows, skipped = same_label_margins(FLAGS.workdir, FLAGS.data_dir)
    except ALError as e:
      cli.fail(e)
    for s in skipped:
      print(f"skipped {s}")
    if not rows:
      cli.fail(f"no finished cycle with a saved pool under {FLAGS.workdir}")
    _print_margins(rows)
    return
  try:
    try:
      labels = [int(n) for n in FLAGS.labels]
    except ValueError:
      raise ALError(f"--labels must be positive integers, got {','.join(FLAGS.labels)}") from None
    if not labels or min(labels) < 1:
      raise ALError(f"--labels must be positive integers, got {','.join(FLAGS.labels)}")
    seeds = cli.parse_seeds(FLAGS.seeds)
    from al_jax.data import DATASETS
    ds = DATASETS.get(FLAGS.dataset)(data_dir=FLAGS.data_dir or None, seed=0)
    if max(labels) > len(ds.y_train):
      raise ALError(f"--labels {max(labels)} is more than the {len(ds.y_train)} training images")
  except ALError as e:
    cli.fail(e)
  for n, acc in linear_probe(ds, labels, seeds).items():
    a = np.array(acc)
    print(f"{FLAGS.dataset} {n:>6} labels: linear probe {a.mean():.4f} ± "
          f"{a.std(ddof=1) if len(a) > 1 else 0.0:.4f} (seeds {','.join(map(str, seeds))})")


if __name__ == "__main__":
  define_flags()
  cli.run(main)
