"""Entry point: python -m experiments.main --method=entropy --dataset=digits --workdir=W

With no flags it runs the default experiment: random sampling on `digits`
with the `cpu` preset. Settings not exposed as flags are overridden with
`--set key=value` (e.g. `--set optim.lr=0.01 --set train.batch_size=64`).

A comma-separated `--method` and/or `--seeds` runs a study (every method × seed,
paired initial pools), one run workdir per pair under --workdir:

    python -m experiments.main --method=random,entropy,margin --seeds=0,1,2 --workdir=W
    python -m experiments.report --workdir=W

`--workers=N` runs a study's members in N processes on this host, `--shard=K/N` only the
K-th of N slices (a SLURM job array, several hosts); `--distributed` runs one experiment as
one program over several processes' devices (one process per host or per GPU, e.g. `srun`),
process 0 alone writing the workdir; `--list` names every method, objective, acquisition
function, model and dataset.
"""

import contextlib
import logging as std_logging
import os
import sys
import tempfile

from absl import flags, logging

from experiments import cli

FLAGS = flags.FLAGS
flags.DEFINE_list("method", ["random"],
                  "Method preset(s), e.g. random, entropy, tod, crtcl, lplgrad, crc, aral "
                  "(objective × acquisition pairings; --list names them all); several = a study.")
flags.DEFINE_string("objective", None, "Override the method's training objective.")
flags.DEFINE_string("acquisition", None, "Override the method's acquisition function.")
flags.DEFINE_string("dataset", "digits", "Dataset: digits, synthetic, fashion_mnist, mnist, "
                    "svhn, cifar10, cifar100 (python -m experiments.prepare_data prepares "
                    "the TFDS ones).")
flags.DEFINE_string("preset", "cpu", "Preset: cpu or paper.")
flags.DEFINE_string("protocol", "", "Run every method under one paper's schedule (model, "
                    "optimiser, epochs, pools, subset R, augmentation, warm start): lplgrad, "
                    "tod or crtcl (experiments/configs/protocols.py).")
flags.DEFINE_integer("seed", 0, "Random seed (initial pool, init, batches, acquisition).",
                     lower_bound=0)
flags.DEFINE_list("seeds", None, "Several seeds = a study (overrides --seed).")
flags.DEFINE_integer("cycles", None, "Number of AL cycles.", lower_bound=1)
flags.DEFINE_integer("initial", None, "Initial labeled pool size.", lower_bound=1)
flags.DEFINE_integer("budget", None, "Points labeled per cycle.", lower_bound=1)
flags.DEFINE_integer("epochs", None, "Training epochs per cycle.", lower_bound=1)
flags.DEFINE_string("workdir", None, "Output directory (default: a new temporary directory).")
flags.DEFINE_string("data_dir", None, "TFDS data directory.")
flags.DEFINE_bool("resume", False, "Continue the experiment in --workdir after its last cycle.")
flags.DEFINE_bool("diagnostics", False, "Write the loss-estimation report of the acquisition "
                  "score per cycle to WORKDIR/diagnostics/cycle_K.json.")
flags.DEFINE_multi_string("set", [], "Config override key=value (dotted keys).")
flags.DEFINE_bool("distributed", False, "Multi-host: one experiment over every process's "
                  "devices. Calls jax.distributed.initialize() first (coordinator and process "
                  "ids from the environment, as under SLURM or on Cloud TPU, or from the three "
                  "flags below); process 0 alone writes the workdir and logs.")
flags.DEFINE_string("coordinator_address", None, "--distributed: host:port of process 0's "
                    "coordinator (default: from the environment, e.g. SLURM).")
flags.DEFINE_integer("num_processes", None, "--distributed: number of processes (default: "
                     "from the environment).", lower_bound=1)
flags.DEFINE_integer("process_id", None, "--distributed: this process's index, 0 = the "
                     "writer (default: from the environment).", lower_bound=0)
flags.DEFINE_enum("ntk_backend", None, ["native", "neural_tangents"],
                  "Empirical-NTK backend of eNTK-based acquisitions (crc): native, or "
                  "neural_tangents where neural-tangents imports.")
flags.DEFINE_bool("print_config", False, "Print each run's fully resolved config, with the "
                  "layer that set every non-default value (dataset, model, objective, "
                  "acquisition, method, protocol, command line, derived), and exit.")
flags.DEFINE_bool("list", False, "Print every method (objective × acquisition, paper), "
                  "objective, acquisition function, model and dataset, and exit.")
flags.DEFINE_enum("progress", "auto", ["auto", "bar", "lines", "off"],
                  "Progress within a cycle: a bar with ETA on a terminal (auto), plain lines "
                  "every --progress_interval seconds otherwise, or off.")
flags.DEFINE_float("progress_interval", 60.0, "Seconds between plain progress lines.",
                   lower_bound=0.0)
flags.DEFINE_bool("tensorboard", False, "Write TensorBoard event files (per-epoch train "
                  "metrics, per-cycle test metrics) to WORKDIR/tensorboard; view with "
                  "tensorboard --logdir=WORKDIR.")
flags.DEFINE_integer("workers", 1, "Run a study's members in this many processes on this "
                     "host (one accelerator each when there are several; a share of the CPU "
                     "cores each on CPU).", lower_bound=1)
flags.DEFINE_string("compilation_cache", "auto", "JAX's persistent compilation cache, which "
                    "lets a run load the steps an earlier run (any process, any study) "
                    "compiled: auto ($JAX_COMPILATION_CACHE_DIR when set, empty = off, else "
                    "$XDG_CACHE_HOME/al_jax/jax_cache; off under --distributed), a "
                    "directory, or off.")
flags.DEFINE_string("shard", None, "K/N: run only the K-th (0 <= K < N) of N disjoint slices "
                    "of the study, e.g. --shard=$SLURM_ARRAY_TASK_ID/4.")


def command_line(seed: int):
  """The command line's settings as (dotted key, value) pairs, in the order they apply."""
  from experiments.configs import parse_set
  out = []
  if seed:
    out.append(("seed", seed))
  if FLAGS.diagnostics:
    out.append(("diagnostics", True))
  for name, key in (("cycles", "al.cycles"), ("initial", "al.initial"),
                    ("budget", "al.budget"), ("epochs", "train.epochs")):
    if getattr(FLAGS, name) is not None:
      out.append((key, getattr(FLAGS, name)))
  if FLAGS.data_dir:
    out.append(("data_dir", FLAGS.data_dir))
  if FLAGS.ntk_backend is not None:  # a shortcut for the eNTK acquisitions' own setting
    out.append(("acquisition_kwargs.ntk_backend", FLAGS.ntk_backend))
  return out + parse_set(FLAGS.set)


def build_configs(seeds):
  """One Resolved config per (method, seed), method-major: every layer of the preset, then
  the command line, then the derived values (experiments.configs.resolve)."""
  from experiments.configs import resolve
  # --objective / --acquisition without --method spell a pairing on their own.
  spelled = (FLAGS.objective or FLAGS.acquisition) and not FLAGS["method"].present
  methods = [None] if spelled else list(FLAGS.method)
  return [resolve(m, FLAGS.dataset, FLAGS.preset, FLAGS.protocol, FLAGS.objective,
                  FLAGS.acquisition, command_line(s))
          for m in methods for s in seeds]


def check_flags():
  """Flag checks that need no JAX: paths of the right kind, consistent combinations."""
  from al_jax import ALError
  from experiments import study as study_lib
  cli.check_dir_or_new("--workdir", FLAGS.workdir)
  if FLAGS.data_dir and os.path.exists(FLAGS.data_dir) and not os.path.isdir(FLAGS.data_dir):
    raise ALError(f"--data_dir={FLAGS.data_dir} exists and is not a directory")
  if FLAGS["seeds"].present and not FLAGS.seeds:
    raise ALError("--seeds is empty")
  seeds = cli.parse_seeds(FLAGS.seeds) if FLAGS.seeds else [FLAGS.seed]
  if FLAGS["method"].present:
    cli.check_names("--method", FLAGS.method)
  # A dedicated flag and a --set of the same key would leave one of them silently unused.
  from experiments.configs import parse_set
  dedicated = {"al.cycles": "cycles", "al.initial": "initial", "al.budget": "budget",
               "train.epochs": "epochs", "diagnostics": "diagnostics", "data_dir": "data_dir",
               "acquisition_kwargs.ntk_backend": "ntk_backend"}
  for key, _ in parse_set(FLAGS.set):
    if key == "seed":  # the study's seeds come from the flags alone
      raise ALError("--set seed=... is not a setting; use --seed or --seeds")
    if key in dedicated and FLAGS[dedicated[key]].present:
      raise ALError(f"--set {key}=... and --{dedicated[key]} set the same thing; give one")
  if FLAGS.resume and not FLAGS.workdir:
    raise ALError("--resume needs the --workdir of the experiment to continue")
  shard = study_lib.parse_shard(FLAGS.shard)
  if (shard or FLAGS.workers > 1) and not FLAGS.workdir:
    raise ALError("--workers and --shard need a --workdir (the study directory every "
                  "process shares)")
  if FLAGS.distributed and (shard or FLAGS.workers > 1):
    raise ALError("--distributed runs one study across hosts' devices as one program; "
                  "use --shard (one process per host) or --workers instead")
  if FLAGS.distributed and (len(seeds) > 1 or len(FLAGS.method) > 1):
    raise ALError("--distributed runs one experiment (one method, one seed) over every "
                  "process's devices; spread a study's members with --shard or --workers")
  spelled = [f"--{f}" for f in ("coordinator_address", "num_processes", "process_id")
             if FLAGS[f].present]
  if spelled and not FLAGS.distributed:
    raise ALError(f"{', '.join(spelled)} only apply with --distributed")
  return seeds, shard


def start_distributed():
  """jax.distributed.initialize() from the flags, or from the environment (SLURM, Open MPI,
  Cloud TPU) where they are not given; a failure to set it up is one line."""
  import jax
  from al_jax import ALError
  try:
    jax.distributed.initialize(coordinator_address=FLAGS.coordinator_address,
                               num_processes=FLAGS.num_processes, process_id=FLAGS.process_id)
  except (ValueError, RuntimeError) as e:
    first = str(e).splitlines()[0] if str(e) else type(e).__name__
    raise ALError(f"--distributed: jax.distributed.initialize() failed: {first}") from None


def run_distributed(config, workdir: str, log, progress):
  """One experiment over every process's devices: each process runs the same loop, process
  0 writing the workdir (al_jax.results) and logging. It ends with every process agreeing on
  the outcome: a failure only process 0 sees after the last collective (its final
  checkpoint's write) fails every process with the same line, and no process returns
  before the workdir is complete."""
  import al_jax.loop as loop
  from al_jax import ALError
  from al_jax import parallel
  error, rows = None, []
  try:
    rows = loop.run(config, workdir, resume=FLAGS.resume, log=log, progress=progress,
                    tensorboard=FLAGS.tensorboard)
  except ALError as e:
    error = str(e)
  # Every process's outcome, process 0's first: a failure raised on one process only.
  error = parallel.first_error(error)
  if error is not None:
    raise ALError(error)
  return rows


def main(argv):
  if len(argv) > 1:
    cli.fail(f"unexpected arguments: {' '.join(argv[1:])}")
  if FLAGS.list:
    print(cli.listing())
    return
  # Our progress lines on stdout; library chatter (orbax, absl) only from WARNING up.
  logging.set_verbosity(logging.WARNING)
  handler = std_logging.StreamHandler(sys.stdout)
  handler.setFormatter(std_logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
  log = std_logging.getLogger("al_jax")
  log.addHandler(handler)
  log.setLevel(std_logging.INFO)
  log.propagate = False
  from al_jax import ALError
  from al_jax import progress as progress_lib
  try:
    seeds, shard = check_flags()
    resolved = build_configs(seeds)
    if FLAGS.print_config:
      for r in resolved:
        print(f"# {r.config.method} seed {r.config.seed} ({FLAGS.preset} preset)")
        print(r.describe())
      return
    configs = [r.config for r in resolved]
    methods = sorted({c.method for c in configs}, key=[c.method for c in configs].index)
    import al_jax.loop as loop  # imported here so --help stays fast
    for c in configs:
      c.lock()
      loop.check_settings(c)  # before a workdir or a JAX client exists
    # Once the settings are sound and before the first compile (JAX decides once per process
    # whether the cache is used); worker processes inherit it through the environment.
    from al_jax import costs
    cache_flag = FLAGS.compilation_cache
    if FLAGS.distributed and cache_flag == "auto":
      # A cold persistent cache hung both processes of a 2-process CPU run in their first
      # compiles (jax 0.12, measured with tests/test_distributed.py); with the cache off the
      # same run takes seconds. An explicit directory is still honoured.
      cache_flag = "off"
    costs.use_persistent_cache(costs.resolve_cache_dir(cache_flag))
    study = len(configs) > 1 or shard is not None
    if FLAGS.workers > 1 and not study:
      log.info("--workers spreads a study's runs (several methods or seeds); this single run "
               "runs in this process")
    in_workers = study and FLAGS.workers > 1
    if in_workers:
      # The workers own the accelerators: this process must not start a JAX client.
      devices = f"{FLAGS.workers} worker processes"
    else:
      import jax
      if FLAGS.distributed:
        start_distributed()
      devices = jax.devices()
    writer = True
    if FLAGS.distributed:
      from al_jax import parallel
      writer = parallel.is_writer()
      if not writer:
        # Process 0 logs for the run; the others compute, and say only what goes wrong.
        log.setLevel(std_logging.WARNING)
    workdir = FLAGS.workdir or (tempfile.mkdtemp(prefix="al_jax_") if writer else None)
    if FLAGS.distributed:
      # Process 0's workdir on every process: the one the run's files go to (the others
      # never touch it, so it need not be on a filesystem they see).
      workdir = parallel.broadcast_json(workdir)
    log.info("al_jax: %s on %s (%s preset), seeds %s, devices %s, workdir %s",
             ",".join(methods), FLAGS.dataset, FLAGS.preset, seeds, devices, workdir)
    progress = (progress_lib.Progress(FLAGS.progress, FLAGS.progress_interval, log=log.info)
                if FLAGS.progress != "off" and writer else None)
    # Log lines printed while a bar is drawn would tear it: tqdm prints them above the bar.
    redirect = contextlib.nullcontext()
    if progress is not None and progress.mode == "bar":
      from tqdm.contrib.logging import logging_redirect_tqdm
      redirect = logging_redirect_tqdm(loggers=[log])
    with redirect:
      if study:
        from experiments import study as study_lib
        runs = study_lib.run_study(
            configs, workdir, FLAGS.resume, log=log.info, shard=shard, workers=FLAGS.workers,
            progress=progress, tensorboard=FLAGS.tensorboard,
            progress_mode="off" if FLAGS.progress == "off" else "lines",
            progress_interval=FLAGS.progress_interval)
      elif FLAGS.distributed:
        runs = {workdir: run_distributed(configs[0], workdir, log.info, progress)}
      else:
        runs = {workdir: loop.run(configs[0], workdir, resume=FLAGS.resume, log=log.info,
                                  progress=progress, tensorboard=FLAGS.tensorboard)}
  except ALError as e:
    cli.fail(e)
  if not writer:
    return
  for path, rows in runs.items():
    if rows:
      last = rows[-1]
      print(f"{last['method']} seed {last['seed']}: {len(rows)} cycles, "
            f"{last['num_labeled']} labels, test accuracy {last['test_accuracy']:.4f}, "
            f"ECE {last['test_ece']:.4f}; results in {os.path.join(path, 'results.jsonl')}")
  if study:
    print(f"report: python -m experiments.report --workdir={workdir}")


if __name__ == "__main__":
  cli.run(main)
