"""Timing helpers shared by the benchmark sections."""

import time
from typing import Callable, Dict

import jax


def time_fn(fn: Callable, *args, repeats: int = 3, warmup: int = 1) -> Dict[str, float]:
  """Compile (first call) and steady-state seconds of `fn(*args)`, outputs blocked on.

  Returns the first call's seconds as "first_s" (compile + run) and the best of
  `repeats` later calls as "best_s" (min is the least noisy on a shared CPU).
  """
  t = time.perf_counter()
  jax.block_until_ready(fn(*args))
  first = time.perf_counter() - t
  for _ in range(max(0, warmup - 1)):
    jax.block_until_ready(fn(*args))
  best = float("inf")
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    best = min(best, time.perf_counter() - t)
  return {"first_s": first, "best_s": best}
