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
# A cold suite spends most of its time compiling (13.4 min cold vs ~5 min warm, BUILD_NOTES
# "A cold test suite"). Tests check behaviour and numbers, not speed, so they compile at LLVM
# -O2 instead of XLA's default -O3: about half the compile time of the large programs, and every
# test passes the same. (-O0 is not usable: it returned non-finite EGL scores and 30%-off Mean
# Teacher / FixMatch updates.) Subprocesses inherit it; the numerics canaries run in children
# with XLA's default flags, as users compile.
TEST_XLA_FLAGS = "--xla_backend_optimization_level=2"
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + TEST_XLA_FLAGS).strip()

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
  if overrides.get("model.name", c.model.name) != c.model.name:
    # Another model: the settings made for the preset's model go, as when a layer of
    # `configs.resolve` swaps the model.
    import ml_collections
    c.model.kwargs = ml_collections.ConfigDict()
  elif c.model.name == "small_cnn":  # the method's own network otherwise (e.g. ARAL's MLP)
    cpu.apply_overrides(c, {"model.kwargs.widths": (8, 16), "model.kwargs.hidden": 32})
  cpu.apply_overrides(c, overrides)
  return c


# Step-level behaviour tests that need no augmentation or dropout share these settings, and
# FixMatch step tests share a cheap strong view (RandAugment has tests of its own), so that
# their jitted steps are one compiled program across modules (the persistent cache's key is
# the program).
FIXED_VIEWS = {"train.augment": False, "model.kwargs.dropout_rate": 0.0}


# One small VAAL (one VAE step per train step, so a step's metrics are the initial VAE's) for
# every VAAL step test; a test that needs other learning rates sets them on the initialised
# state (`optim.set_learning_rate`), because a rate in the config is a constant of the
# compiled init.
VAAL_TINY = {"objective_kwargs.vae_widths": (8, 16), "objective_kwargs.sampler_hidden": (32,),
             "objective_kwargs.num_vae_steps": 1}

# A tiny ARAL: noise-free discriminator (deterministic D), small E/G/S.
ARAL_TINY = {"model.kwargs.hidden": (64, 32), "model.kwargs.input_noise": 0.0,
             "model.kwargs.noise": 0.0, "objective_kwargs.latent_dim": 8,
             "objective_kwargs.mlp_hidden": (32,), "objective_kwargs.sampler_hidden": (32,)}


def cheap_strong_view(monkeypatch):
  """FixMatch's strong view replaced by the weak one (`fixmatch.py` reads it at trace time)."""
  from al_jax.data import randaugment
  monkeypatch.setattr(randaugment, "strong_view", lambda k, x, prep, *a: prep.train(k, x))


@pytest.fixture
def make_config():
  return tiny_config


def pytest_xdist_auto_num_workers(config):
  """`-n auto` runs one worker more than the cores it may use: the suite's subprocess tests
  (CLI runs, killed studies, 2-process runs) leave their pytest worker waiting, and a third
  worker on 2 cores fills that time (cold suite, BUILD_NOTES "A cold test suite")."""
  del config
  cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
           else os.cpu_count() or 1)
  return cores + 1
