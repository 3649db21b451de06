"""Benchmark sections run by `python -m experiments.benchmark --sections=a,b`.

Each module here registers functions in `SECTIONS`: `fn(args) -> list[dict]`, one
dict per measured configuration (a row of the printed table and of the JSON).
"""

from typing import Callable, Dict

SECTIONS: Dict[str, Callable] = {}


def section(name: str):
  def deco(fn):
    if name in SECTIONS:
      raise ValueError(f"benchmark section {name!r} registered twice")
    SECTIONS[name] = fn
    return fn
  return deco
