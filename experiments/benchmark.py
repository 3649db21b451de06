"""Throughput benchmarks: python -m experiments.benchmark --sections=NAME[,NAME] [--json=F]

Prints one table per section and optionally writes all rows as JSON. With
`--profile_dir` the measured calls also run under `jax.profiler.trace` (view the
trace in TensorBoard or Perfetto). Speed targets are measured here, never in tests.
"""

import json

from absl import flags

from al_jax import ALError
from experiments import cli
from experiments.benchmarks import SECTIONS

FLAGS = flags.FLAGS
flags.DEFINE_list("sections", None, "Sections to run (default: all).")
flags.DEFINE_string("json", None, "Write all rows to this JSON file.")
flags.DEFINE_string("profile_dir", None, "Write a jax.profiler trace here.")
flags.DEFINE_bool("quick", False, "Smaller sizes (a smoke run).")


def _load_sections():
  # Each module registers its sections on import.
  import importlib
  import pkgutil
  import experiments.benchmarks as pkg
  for m in pkgutil.iter_modules(pkg.__path__):
    importlib.import_module(f"experiments.benchmarks.{m.name}")


def print_table(title, rows):
  if not rows:
    return
  cols = list(rows[0])
  fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)
  width = {c: max(len(c), *(len(fmt(r.get(c, ""))) for r in rows)) for c in cols}
  print(f"\n## {title}")
  print(" | ".join(c.ljust(width[c]) for c in cols))
  print("-+-".join("-" * width[c] for c in cols))
  for r in rows:
    print(" | ".join(fmt(r.get(c, "")).ljust(width[c]) for c in cols))


def main(argv):
  if len(argv) > 1:
    cli.fail(f"unexpected arguments: {' '.join(argv[1:])}")
  if FLAGS["sections"].present:  # an empty value (an unset variable) is not "all"
    try:
      cli.check_names("--sections", FLAGS.sections)
    except ALError as e:
      cli.fail(e)
  _load_sections()
  names = FLAGS.sections or sorted(SECTIONS)
  unknown = [n for n in names if n not in SECTIONS]
  if unknown:
    cli.fail(f"unknown sections {unknown}; valid: {', '.join(sorted(SECTIONS))}")
  try:
    cli.check_new_file("--json", FLAGS.json)
    cli.check_dir_or_new("--profile_dir", FLAGS.profile_dir)
  except ALError as e:
    cli.fail(e)
  import jax
  print(f"devices: {jax.devices()}")
  out = {}
  for n in names:
    if FLAGS.profile_dir:
      with jax.profiler.trace(f"{FLAGS.profile_dir}/{n}"):
        rows = SECTIONS[n](FLAGS)
    else:
      rows = SECTIONS[n](FLAGS)
    print_table(n, rows)
    out[n] = rows
  if FLAGS.json:
    with open(FLAGS.json, "w") as f:
      json.dump({"devices": [str(d) for d in jax.devices()], "sections": out}, f, indent=2)


if __name__ == "__main__":
  cli.run(main)
