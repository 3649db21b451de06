"""Presets: `get_config(method, dataset, preset)` resolves a complete, locked ConfigDict."""

import importlib

from al_jax import ALError

PRESETS = ("cpu", "paper")


def get_config(method: str, dataset: str, preset: str = "cpu", protocol: str = ""):
  """The preset's config for (method, dataset); `protocol` names a paper whose schedule every
  method of its comparison runs under (experiments/configs/protocols.py)."""
  if preset not in PRESETS:
    raise ALError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
  return importlib.import_module(f"experiments.configs.{preset}").get_config(method, dataset,
                                                                            protocol)
