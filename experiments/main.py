"""Entry point: python -m experiments.main --method=entropy --dataset=digits --workdir=W

With no flags it runs the default experiment: random sampling on `digits`
with the `cpu` preset. Settings not exposed as flags are overridden with
`--set key=value` (e.g. `--set optim.lr=0.01 --set train.batch_size=64`).
"""

import ast
import logging as std_logging
import os
import sys
import tempfile

from absl import app, flags, logging

FLAGS = flags.FLAGS
flags.DEFINE_string("method", "random", "Method preset (an objective × acquisition pairing).")
flags.DEFINE_string("objective", None, "Override the method's training objective.")
flags.DEFINE_string("acquisition", None, "Override the method's acquisition function.")
flags.DEFINE_string("dataset", "digits", "Dataset name.")
flags.DEFINE_string("preset", "cpu", "Preset: cpu or paper.")
flags.DEFINE_integer("seed", 0, "Random seed (initial pool, init, batches, acquisition).")
flags.DEFINE_integer("cycles", None, "Number of AL cycles.")
flags.DEFINE_integer("initial", None, "Initial labeled pool size.")
flags.DEFINE_integer("budget", None, "Points labeled per cycle.")
flags.DEFINE_integer("epochs", None, "Training epochs per cycle.")
flags.DEFINE_string("workdir", None, "Output directory (default: a new temporary directory).")
flags.DEFINE_string("data_dir", None, "TFDS data directory.")
flags.DEFINE_bool("resume", False, "Continue the experiment in --workdir after its last cycle.")
flags.DEFINE_multi_string("set", [], "Config override key=value (dotted keys).")
flags.DEFINE_string("ntk_backend", None, "Empirical-NTK backend of eNTK-based acquisitions "
                    "(crc): native, or neural_tangents where neural-tangents imports.")


def build_config():
  """Resolves the preset, then the flags, then --set overrides; unknown keys raise."""
  from al_jax import ALError
  from experiments.configs import get_config
  c = get_config(FLAGS.method, FLAGS.dataset, FLAGS.preset)
  if FLAGS.objective or FLAGS.acquisition:
    from al_jax.objectives import OBJECTIVES
    from al_jax.acquisition import ACQUISITIONS
    c.objective = OBJECTIVES.get(FLAGS.objective).name if FLAGS.objective else c.objective
    c.acquisition = (ACQUISITIONS.get(FLAGS.acquisition).name if FLAGS.acquisition
                     else c.acquisition)
  c.seed = FLAGS.seed
  for name, key in (("cycles", "al.cycles"), ("initial", "al.initial"),
                    ("budget", "al.budget"), ("epochs", "train.epochs")):
    if getattr(FLAGS, name) is not None:
      _assign(c, key, getattr(FLAGS, name))
  if FLAGS.data_dir:
    c.data_dir = FLAGS.data_dir
  if FLAGS.ntk_backend is not None:
    import inspect
    from al_jax.acquisition import ACQUISITIONS
    if "ntk_backend" not in inspect.signature(ACQUISITIONS.get(c.acquisition)).parameters:
      raise ALError(f"--ntk_backend applies to eNTK-based acquisitions (crc), not "
                    f"{c.acquisition!r}")
    c.acquisition_kwargs.ntk_backend = FLAGS.ntk_backend
  for item in FLAGS.set:
    if "=" not in item:
      raise ALError(f"--set expects key=value, got {item!r}")
    key, raw = item.split("=", 1)
    try:
      value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
      value = raw
    _assign(c, key.strip(), value)
  return c


def _assign(c, key, value):
  from al_jax import ALError
  node = c
  *path, leaf = key.split(".")
  try:
    for p in path:
      node = node[p]
    if leaf not in node:
      raise KeyError(leaf)
    node[leaf] = value
  except KeyError:
    raise ALError(f"unknown config key {key!r}") from None
  except TypeError as e:
    raise ALError(f"config key {key!r}: {e}") from None


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  # Our progress lines on stdout; library chatter (orbax, absl) only from WARNING up.
  logging.set_verbosity(logging.WARNING)
  handler = std_logging.StreamHandler(sys.stdout)
  handler.setFormatter(std_logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
  log = std_logging.getLogger("al_jax")
  log.addHandler(handler)
  log.setLevel(std_logging.INFO)
  log.propagate = False
  from al_jax import ALError
  try:
    import al_jax.loop as loop  # imported here so --help stays fast
    config = build_config()
    workdir = FLAGS.workdir or tempfile.mkdtemp(prefix=f"al_jax_{config.method}_")
    import jax
    log.info("al_jax: %s on %s (%s preset), seed %d, devices %s, workdir %s",
                 config.method, config.dataset, config.preset, config.seed, jax.devices(),
                 workdir)
    config.lock()
    rows = loop.run(config, workdir, resume=FLAGS.resume)
  except ALError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  if rows:
    last = rows[-1]
    print(f"finished {len(rows)} cycles: {last['num_labeled']} labels, test accuracy "
          f"{last['test_accuracy']:.4f}, ECE {last['test_ece']:.4f}; results in "
          f"{os.path.join(workdir, 'results.jsonl')}")


if __name__ == "__main__":
  app.run(main)
