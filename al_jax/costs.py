"""What an AL cycle costs in compilation, and the persistent cache that saves it across runs.

Compile seconds are JAX's own measurements of its compile pipeline, read through
`jax.monitoring`: tracing a top-level jitted function to a jaxpr, lowering it to StableHLO,
and the backend compile — which, with the persistent cache on, is the cache lookup plus
either the load of a cached executable (a hit) or the XLA compile and the cache write (a
miss). A jitted function called inside another one is traced within its caller's trace and
not reported on its own, so the three stages never overlap and their sum is the time spent
compiling, not the wall time of a first call minus a guess at its run time. Eager operations
compile too (once per primitive and shape); they count as well. The seconds are kept per
thread, so a run in one thread is not charged for another thread's compiles.

The persistent compilation cache keys an executable by its program, the JAX and XLA versions,
the backend and the compile options, so one directory serves every run, study and checkout
of the user: the second run of a member loads its steps instead of compiling them.
"""

import os
import threading
from typing import Optional

import jax

# The compile pipeline's stages as JAX names them (jax._src.dispatch).
COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration",
                  "/jax/core/compile/jaxpr_to_mlir_module_duration",
                  "/jax/core/compile/backend_compile_duration")

# The smallest compile time worth an entry in the persistent cache: every program. JAX's
# default (1 s) skips every program of a CPU-sized run, and even 0.1 s leaves the eager
# operations (parameter initialisers, one small program per primitive and shape) compiling on
# every start: on digits, entropy, 3 cycles, a warm cache cut the run's compile seconds from
# 14.0 to 1.5 with every program cached, to only 5.5 with programs over 0.1 s (126 entries,
# 0.8 MB in all).
MIN_CACHED_COMPILE_SECONDS = 0.0

_local = threading.local()
_install_lock = threading.Lock()
_installed = False


def _on_duration(event: str, duration: float, **_) -> None:
  if event in COMPILE_EVENTS:
    _local.seconds = getattr(_local, "seconds", 0.0) + duration


def _install() -> None:
  global _installed
  with _install_lock:
    if not _installed:
      jax.monitoring.register_event_duration_secs_listener(_on_duration)
      _installed = True


def compile_seconds() -> float:
  """Seconds this thread has spent compiling since the clock was first read (differences of
  two readings are what a caller measures)."""
  _install()
  return getattr(_local, "seconds", 0.0)


class CompileClock:
  """Compile seconds within a window: `with CompileClock() as c: ...; c.seconds`."""

  def __enter__(self):
    self._start = compile_seconds()
    self.seconds = 0.0
    return self

  def __exit__(self, *exc):
    self.seconds = compile_seconds() - self._start
    return False


# --- the persistent compilation cache ------------------------------------------------------
def default_cache_dir() -> str:
  """The user's cache: $XDG_CACHE_HOME/al_jax/jax_cache (~/.cache/al_jax/jax_cache)."""
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "al_jax", "jax_cache")


def resolve_cache_dir(flag: str) -> Optional[str]:
  """The directory a `--compilation_cache` value names: "auto" is JAX_COMPILATION_CACHE_DIR
  when the environment sets it (set empty: none, as JAX reads it), else the user's cache;
  "off" (or "") is none."""
  if flag in ("off", ""):
    return None
  if flag == "auto":
    if "JAX_COMPILATION_CACHE_DIR" in os.environ:
      return os.environ["JAX_COMPILATION_CACHE_DIR"] or None
    return default_cache_dir()
  return os.path.abspath(os.path.expanduser(flag))


def use_persistent_cache(path: Optional[str],
                         min_compile_seconds: float = MIN_CACHED_COMPILE_SECONDS) -> None:
  """Points JAX's persistent compilation cache at `path` (None: off) for this process and,
  through the environment, for the worker processes it spawns. Call it before the first
  compile: JAX decides once per process whether the cache is used."""
  from al_jax import ALError  # pylint: disable=g-import-not-at-top
  if path is None:
    jax.config.update("jax_compilation_cache_dir", None)
    os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)
    return
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    raise ALError(f"compilation cache {path}: cannot create it ({e.strerror}); pass "
                  "--compilation_cache=off or another directory") from None
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", min_compile_seconds)
  os.environ["JAX_COMPILATION_CACHE_DIR"] = path
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = str(min_compile_seconds)
