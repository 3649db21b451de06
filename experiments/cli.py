"""What every command-line tool shares: one-line errors for bad flags, path checks, `--list`.

A user's mistake must end as one line on stderr and exit status 2, never as a traceback:
absl's own flag-parsing errors (a non-integer `--seed`, a value below a flag's lower bound)
print two lines and exit 1, so `run` installs a parser that prints absl's message alone.
"""

import errno
import os
import sys
import tempfile
from typing import Callable, List, Optional

from absl import app, flags

from al_jax import ALError

EXIT_USAGE = 2


def fail(message: str) -> None:
  """Prints `error: message` as one line on stderr and exits with status 2."""
  print(f"error: {' '.join(str(message).split())}", file=sys.stderr)
  sys.exit(EXIT_USAGE)


# Flags that name a file or directory. The shell leaves `~` alone after `--flag=` (it expands
# a tilde only at the start of a word or in a variable assignment), so `--data_dir=~/tfds`
# would otherwise create a directory named `~` in the current one.
PATH_FLAGS = ("workdir", "data_dir", "manual_dir", "json", "profile_dir", "compilation_cache")


def _parse_flags(argv: List[str]) -> List[str]:
  try:
    rest = flags.FLAGS(argv)
  except flags.Error as e:
    fail(e)
  for name in PATH_FLAGS:
    value = flags.FLAGS[name].value if name in flags.FLAGS else None
    if isinstance(value, str) and value.startswith("~"):
      flags.FLAGS[name].value = os.path.expanduser(value)
  return rest


def run(main: Callable[[List[str]], None]) -> None:
  """`absl.app.run(main)` whose flag errors are one line and exit 2."""
  app.run(main, flags_parser=_parse_flags)


# --- paths --------------------------------------------------------------------------------
def check_dir_or_new(flag: str, path: Optional[str]) -> None:
  """`path` may be created as a directory: it is one already, or nothing is there yet and the
  nearest existing parent is a writable directory."""
  if not path:
    return
  if os.path.exists(path):
    if not os.path.isdir(path):
      raise ALError(f"{flag}={path} exists and is not a directory")
    if not os.access(path, os.W_OK | os.X_OK):
      raise ALError(f"{flag}={path} is not writable")
    return
  parent = os.path.dirname(os.path.abspath(path))
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent):
    raise ALError(f"{flag}={path}: {parent} is not a directory")
  if not os.access(parent, os.W_OK | os.X_OK):
    raise ALError(f"{flag}={path}: cannot create it, {parent} is not writable")
  # Permission bits do not tell everything (root, /proc, a read-only mount): try it.
  try:
    os.rmdir(tempfile.mkdtemp(prefix=".al_jax_probe_", dir=parent))
  except OSError as e:
    name = errno.errorcode.get(e.errno, "error") if e.errno else type(e).__name__
    raise ALError(f"{flag}={path}: cannot create it in {parent} ({name}: "
                  f"{e.strerror or e})") from None


def check_existing_dir(flag: str, path: Optional[str]) -> None:
  if not path or not os.path.isdir(path):
    kind = "is not a directory" if path and os.path.exists(path) else "does not exist"
    raise ALError(f"{flag} must be an existing directory; {path!r} {kind}")


def check_new_file(flag: str, path: Optional[str]) -> None:
  """`path` will be written as a file: not a directory, and its folder exists."""
  if not path:
    return
  if os.path.isdir(path):
    raise ALError(f"{flag}={path} is a directory, expected a file name")
  parent = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(parent):
    raise ALError(f"{flag}={path}: folder {parent} does not exist")
  if not os.access(parent, os.W_OK | os.X_OK):
    raise ALError(f"{flag}={path}: folder {parent} is not writable")


def check_names(flag: str, values: List[str]) -> None:
  """A comma-separated list of names (`--method`, `--claims`): none empty, none twice (an
  empty entry would otherwise name the default, a repeated one run twice)."""
  if not values:
    raise ALError(f"{flag} is empty")
  if any(not v.strip() for v in values):
    raise ALError(f"{flag}={','.join(values)} has an empty entry")
  twice = sorted({v for v in values if values.count(v) > 1})
  if twice:
    raise ALError(f"{flag} lists {twice[0]} twice")


# --- numbers ------------------------------------------------------------------------------
def parse_seeds(values: List[str], flag: str = "--seeds") -> List[int]:
  """`--seeds` entries as non-negative integers (numpy's seed sequences reject negatives)."""
  if not values:
    raise ALError(f"{flag} is empty")
  out = []
  for v in values:
    try:
      s = int(v)
    except ValueError:
      raise ALError(f"{flag} must be non-negative integers, got {v!r}") from None
    if s < 0:
      raise ALError(f"{flag} must be non-negative integers, got {s}")
    out.append(s)
  if len(set(out)) != len(out):
    raise ALError(f"{flag} lists a seed twice: {','.join(values)}")
  return out


# --- discoverability ----------------------------------------------------------------------
def _first_line(obj) -> str:
  """The summary line of `obj`'s docstring, or of its module's when the class starts with
  its argument list."""
  doc = (getattr(obj, "__doc__", None) or "").strip()
  if not doc or doc.startswith("Args"):
    doc = (getattr(sys.modules.get(getattr(obj, "__module__", "")), "__doc__", None)
           or "").strip()
  return doc.splitlines()[0].rstrip(".") if doc else ""


def listing() -> str:
  """Every method (objective × acquisition, paper), objective, acquisition function, model,
  dataset and preset, one line each."""
  from al_jax.acquisition import ACQUISITIONS
  from al_jax.data import DATASETS
  from al_jax.methods import METHODS
  from al_jax.models import MODELS
  from al_jax.objectives import OBJECTIVES
  from experiments.configs import PRESETS
  out = ["methods (--method; objective × acquisition: description):"]
  width = max(map(len, METHODS))
  for name, m in sorted(METHODS.items()):
    out.append(f"  {name:<{width}}  {m.objective} × {m.acquisition}: {m.description}")
  for title, reg in (("objectives (--objective)", OBJECTIVES),
                     ("acquisition functions (--acquisition)", ACQUISITIONS),
                     ("datasets (--dataset)", DATASETS)):
    out.append(f"{title}:")
    width = max(map(len, reg.names()))
    for name in reg.names():
      out.append(f"  {name:<{width}}  {_first_line(reg.get(name))}")
  out.append("models (--set model.name=NAME):")
  width = max(map(len, MODELS.names()))
  for name in MODELS.names():
    factory = MODELS.get(name)
    fixed = ", ".join(f"{k}={v}" for k, v in factory.fixed.items())
    out.append(f"  {name:<{width}}  {factory.model_class.__name__}({fixed}): "
               f"{_first_line(factory.model_class)}")
  out.append(f"presets (--preset): {', '.join(PRESETS)}")
  return "\n".join(out)
