"""Shared fixtures: tiny configs that run an AL experiment in seconds on CPU."""

import os
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Many tests build learners whose jitted steps are the same XLA program (a new `jax.jit`
# object each time, so the in-memory cache misses); JAX's persistent compilation cache, keyed
# by the program, compiles each once per session — and, being per user rather than per
# session, once for every later session and xdist worker until the program changes. The
# environment variables reach the CLI tests' subprocesses too (experiments.main's
# --compilation_cache=auto takes this directory). Every program is cached, however small
# (al_jax/costs.py, MIN_CACHED_COMPILE_SECONDS: the eager operations' small programs are most
# of a tiny run's compiling). A cached executable is the one a compile would produce, so the
# cache changes no result and no test depends on the order tests ran in; a half-written entry
# (two workers writing one key) fails to load with a warning and is compiled instead.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(tempfile.gettempdir(), f"al_jax_test_xla_cache_{os.getuid()}"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import pytest  # noqa: E402

from experiments.configs import AtLeast, cpu  # noqa: E402
from experiments.configs import get_config  # noqa: E402


def tiny_config(method: str = "random", dataset: str = "digits", **overrides):
  """A cpu-preset config shrunk to a few seconds; overrides use dotted keys."""
  c = get_config(method, dataset, "cpu")
  cpu.apply_overrides(c, {
      "al.initial": 20, "al.budget": 10, "al.cycles": 3, "train.epochs": 2,
      "train.batch_size": 16, "train.unlabeled_batch_size": 16, "eval.chunk_size": 128,
      "log_every": 1000})
  # Few steps: the objective's or method's own minimum (SSL, ARAL), not the dataset's
  # steps-per-cycle rule that makes the cpu preset's models learn (tests need behaviour, not
  # accuracy).
  key = "train.min_steps_per_epoch"
  own = (cpu.METHODS.get(method, {}).get(key) or cpu.OBJECTIVES.get(c.objective, {}).get(key)
         or 1)
  cpu.apply_overrides(c, {key: own.value if isinstance(own, AtLeast) else own})
  if c.model.name == "small_cnn":  # the method's own network otherwise (e.g. ARAL's MLP)
    cpu.apply_overrides(c, {"model.kwargs.widths": (8, 16), "model.kwargs.hidden": 32})
  cpu.apply_overrides(c, overrides)
  return c


@pytest.fixture
def make_config():
  return tiny_config
