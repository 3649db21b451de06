"""Entry point: python -m experiments.main --method=entropy --dataset=digits --workdir=W

With no flags it runs the default experiment: random sampling on `digits`
with the `cpu` preset. Settings not exposed as flags are overridden with
`--set key=value` (e.g. `--set optim.lr=0.01 --set train.batch_size=64`).

A comma-separated `--method` and/or `--seeds` runs a study (every method × seed,
paired initial pools), one run workdir per pair under --workdir:

    python -m experiments.main --method=random,entropy,margin --seeds=0,1,2 --workdir=W
    python -m experiments.report --workdir=W
"""

import logging as std_logging
import os
import sys
import tempfile

from absl import app, flags, logging

from experiments.configs import assign, parse_set

FLAGS = flags.FLAGS
flags.DEFINE_list("method", ["random"],
                  "Method preset(s) (objective × acquisition pairings); several = a study.")
flags.DEFINE_string("objective", None, "Override the method's training objective.")
flags.DEFINE_string("acquisition", None, "Override the method's acquisition function.")
flags.DEFINE_string("dataset", "digits", "Dataset name.")
flags.DEFINE_string("preset", "cpu", "Preset: cpu or paper.")
flags.DEFINE_string("protocol", "", "Run every method under one paper's schedule (model, "
                    "optimiser, epochs, pools, subset R, augmentation, warm start): lplgrad, "
                    "tod or crtcl (experiments/configs/protocols.py).")
flags.DEFINE_integer("seed", 0, "Random seed (initial pool, init, batches, acquisition).")
flags.DEFINE_list("seeds", None, "Several seeds = a study (overrides --seed).")
flags.DEFINE_integer("cycles", None, "Number of AL cycles.")
flags.DEFINE_integer("initial", None, "Initial labeled pool size.")
flags.DEFINE_integer("budget", None, "Points labeled per cycle.")
flags.DEFINE_integer("epochs", None, "Training epochs per cycle.")
flags.DEFINE_string("workdir", None, "Output directory (default: a new temporary directory).")
flags.DEFINE_string("data_dir", None, "TFDS data directory.")
flags.DEFINE_bool("resume", False, "Continue the experiment in --workdir after its last cycle.")
flags.DEFINE_bool("diagnostics", False, "Write the loss-estimation report of the acquisition "
                  "score per cycle to WORKDIR/diagnostics/cycle_K.json.")
flags.DEFINE_multi_string("set", [], "Config override key=value (dotted keys).")
flags.DEFINE_bool("distributed", False, "Multi-host: call jax.distributed.initialize() first "
                  "(coordinator and process ids from the environment, as on Cloud TPU/SLURM).")
flags.DEFINE_string("ntk_backend", None, "Empirical-NTK backend of eNTK-based acquisitions "
                    "(crc): native, or neural_tangents where neural-tangents imports.")


def resolve_methods():
  """(methods, acquisition override). Without --method, an --objective starts from its own
  method's preset (`al_jax.methods.preset_method`: --objective=aral gets aral's model, pool
  sizes and schedule, not `random`'s), keeping the default method's acquisition unless
  --acquisition names one."""
  from al_jax.methods import get_method, preset_method
  if not FLAGS.objective or FLAGS["method"].present or len(FLAGS.method) != 1:
    return list(FLAGS.method), FLAGS.acquisition
  from al_jax.objectives import OBJECTIVES
  OBJECTIVES.get(FLAGS.objective)  # unknown names: the one-line error first
  default = FLAGS.method[0]
  base = preset_method(FLAGS.objective, default)
  return [base], FLAGS.acquisition or get_method(default).acquisition


def build_config(method: str, seed: int, acquisition=None):
  """Resolves the preset, then the flags, then --set overrides; unknown keys raise."""
  import ml_collections
  from al_jax import ALError
  from al_jax.methods import get_method
  from experiments.configs import get_config
  c = get_config(method, FLAGS.dataset, FLAGS.preset, FLAGS.protocol)
  acquisition = acquisition or FLAGS.acquisition
  if FLAGS.objective or acquisition:
    from al_jax.objectives import OBJECTIVES
    from al_jax.acquisition import ACQUISITIONS
    if FLAGS.objective:
      OBJECTIVES.get(FLAGS.objective)
      c.objective = FLAGS.objective
    if acquisition:
      ACQUISITIONS.get(acquisition)
      c.acquisition = acquisition
    # The method's settings belong to its own components: a replaced one starts from its
    # defaults (e.g. --method=tod --objective=supervised must not pass λ to supervised).
    if c.objective != get_method(method).objective:
      c.objective_kwargs = ml_collections.ConfigDict()
    if c.acquisition != get_method(method).acquisition:
      c.acquisition_kwargs = ml_collections.ConfigDict()
    if (c.objective, c.acquisition) != tuple(get_method(method)[:2]):
      c.method = f"{c.objective}+{c.acquisition}"  # an ablation pair: name it by its parts
  c.seed = seed
  c.diagnostics = FLAGS.diagnostics
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
  for key, value in parse_set(FLAGS.set):
    _assign(c, key, value)
  return c


_assign = assign  # the one definition lives in experiments.configs


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
    import jax
    if FLAGS.distributed:
      jax.distributed.initialize()
    import al_jax.loop as loop  # imported here so --help stays fast
    try:
      seeds = [int(s) for s in FLAGS.seeds] if FLAGS.seeds else [FLAGS.seed]
    except ValueError:
      raise ALError(f"--seeds must be integers, got {FLAGS.seeds}") from None
    methods, acquisition = resolve_methods()
    configs = [build_config(m, s, acquisition) for m in methods for s in seeds]
    for c in configs:
      c.lock()
    study = len(configs) > 1
    workdir = FLAGS.workdir or tempfile.mkdtemp(prefix="al_jax_")
    log.info("al_jax: %s on %s (%s preset), seeds %s, devices %s, workdir %s",
             ",".join(methods), FLAGS.dataset, FLAGS.preset, seeds, jax.devices(), workdir)
    if study:
      from experiments import study as study_lib
      runs = study_lib.run_study(configs, workdir, FLAGS.resume)
    else:
      runs = {workdir: loop.run(configs[0], workdir, resume=FLAGS.resume)}
  except ALError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  for path, rows in runs.items():
    if rows:
      last = rows[-1]
      print(f"{last['method']} seed {last['seed']}: {len(rows)} cycles, "
            f"{last['num_labeled']} labels, test accuracy {last['test_accuracy']:.4f}, "
            f"ECE {last['test_ece']:.4f}; results in {os.path.join(path, 'results.jsonl')}")
  if study:
    print(f"report: python -m experiments.report --workdir={workdir}")


if __name__ == "__main__":
  app.run(main)
