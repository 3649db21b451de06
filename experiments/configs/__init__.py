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


def assign(c, key: str, value) -> None:
  """Sets dotted `key` of config `c`; unknown keys raise ALError.

  Component settings (objective_kwargs, acquisition_kwargs, model.kwargs) are open-ended:
  the component checks its own keyword arguments and rejects unknown ones.
  """
  import ml_collections
  node = c
  *path, leaf = key.split(".")
  try:
    open_ended = any(p.endswith("kwargs") for p in path)
    for p in path:
      if p not in node and open_ended:
        node[p] = ml_collections.ConfigDict()
      node = node[p]
    if leaf not in node and not open_ended:
      raise KeyError(leaf)
    node[leaf] = value
  except KeyError:
    raise ALError(f"unknown config key {key!r}") from None
  except TypeError as e:
    raise ALError(f"config key {key!r}: {e}") from None


def parse_set(items) -> list:
  """`--set key=value` items → [(key, value)], values parsed as Python literals when they
  are one (numbers, tuples, booleans), else kept as strings."""
  import ast
  out = []
  for item in items:
    if "=" not in item:
      raise ALError(f"--set expects key=value, got {item!r}")
    key, raw = item.split("=", 1)
    try:
      value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
      value = raw
    out.append((key.strip(), value))
  return out
