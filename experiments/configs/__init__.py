"""Presets and the one function that resolves a run's settings.

    resolve(method="lplgrad", dataset="fashion_mnist")                    # a named pairing
    resolve(objective="loss_pred", acquisition="entropy_gradnorm", ...)   # the same run

A run's config is built in one order, each layer overriding the ones before it:

    base → dataset → model → objective → acquisition → method → protocol → command line

then every derived value (`derive.*`: μ·B, ramp-up steps, detach epoch, G from Q) is computed
from that final config. A setting lives with the component it configures (the objective's
layer holds FixMatch's μ, Mean Teacher's ramp-up, the loss module's settings; the acquisition's
holds the gradient-norm options), so a pairing resolves to the same config however it is
spelled: `--method=X` and `--objective=A --acquisition=B` with X = A × B are one run, named X.
The method layer holds only the few paper-specific settings of a named pairing. Every value
remembers the layer that set it last (`Resolved.sources`; `--print_config` shows them).
"""

import dataclasses
import importlib
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from al_jax import ALError

PRESETS = ("cpu", "paper")


@dataclasses.dataclass(frozen=True)
class AtLeast:
  """A layer value that raises a setting to a lower bound instead of replacing it (SSL
  objectives need more steps per epoch than a few labeled batches give)."""
  value: Any


@dataclasses.dataclass(frozen=True)
class Derived:
  """`target` = fn(config, ratio) whenever `ratio` (a `derive.*` key) is non-zero, unless a
  later layer than the ratio's set `target` itself (an explicit value wins)."""
  ratio: str
  target: str
  fn: Callable[[Any, float], Any]
  text: str


DERIVED: Tuple[Derived, ...] = (
    Derived("derive.unlabeled_ratio", "train.unlabeled_batch_size",
            lambda c, r: int(round(r * c.train.batch_size)), "μ × train.batch_size"),
    Derived("derive.rampup_fraction", "objective_kwargs.rampup_steps",
            lambda c, f: int(f * c.train.epochs * c.train.min_steps_per_epoch),
            "fraction × train.epochs × train.min_steps_per_epoch"),
    Derived("derive.detach_fraction", "objective_kwargs.detach_epoch",
            lambda c, f: int(round(f * c.train.epochs)), "fraction × train.epochs"),
    Derived("derive.group_fraction", "acquisition_kwargs.group_size",
            lambda c, f: max(1, int(round(f * c.al.budget))), "fraction × al.budget"),
    Derived("derive.cosine_fraction", "objective_kwargs.cosine_steps",
            lambda c, f: int(round(f * c.train.epochs * c.train.min_steps_per_epoch)),
            "fraction × train.epochs × train.min_steps_per_epoch"),
)

# The layers in resolution order; a later one overrides an earlier one.
LAYERS = ("base", "dataset", "model", "objective", "acquisition", "method", "protocol",
          "command line", "ledger member", "derived")


@dataclasses.dataclass
class Resolved:
  """A resolved config and, per dotted key, the layer that set it (absent: base default)."""
  config: Any
  sources: Dict[str, str]

  def describe(self) -> str:
    """Every setting, one per line, with where each non-default value came from."""
    lines = []
    for key, value in _leaves(self.config.to_dict()):
      src = self.sources.get(key)
      lines.append(f"{key} = {value!r}" + (f"    # {src}" if src else ""))
    return "\n".join(lines)


def _leaves(d: Dict, prefix: str = ""):
  for k in sorted(d):
    v = d[k]
    key = f"{prefix}{k}"
    if isinstance(v, dict) and v:
      yield from _leaves(v, key + ".")
    else:
      yield key, v


def get_node(c, key: str):
  node = c
  for p in key.split("."):
    node = node[p]
  return node


def assign(c, key: str, value) -> None:
  """Sets dotted `key` of config `c`; unknown keys raise ALError.

  Component settings (objective_kwargs, acquisition_kwargs, model.kwargs) are open-ended:
  their names are checked against the component's signature (`check`). A section (`optim`,
  `model.kwargs`) takes a dict, merged key by key as if each were set on its own; any other
  value for a section is refused.
  """
  import ml_collections
  node = c
  *path, leaf = key.split(".")
  open_ended = any(p.endswith("kwargs") for p in path)
  for i, p in enumerate(path):
    if not isinstance(node, ml_collections.ConfigDict):
      raise ALError(f"unknown config key {key!r}: {'.'.join(path[:i])} is a setting, not a "
                    "section")
    if p not in node:
      if not open_ended:
        raise ALError(f"unknown config key {key!r}")
      node[p] = ml_collections.ConfigDict()
    node = node[p]
  if not isinstance(node, ml_collections.ConfigDict):
    raise ALError(f"unknown config key {key!r}: {'.'.join(path)} is a setting, not a section")
  if leaf not in node and not open_ended:
    raise ALError(f"unknown config key {key!r}")
  old = node[leaf] if leaf in node else None
  # A base section or a component's settings section (not a component setting whose value
  # is itself a dict, like PT4AL's pretext optimiser).
  if isinstance(old, ml_collections.ConfigDict) and not open_ended:
    if not isinstance(value, (dict, ml_collections.ConfigDict)):
      raise ALError(f"{key}={value!r}: {key} is a section; set its keys ({key}.NAME=VALUE) "
                    "or give it a dict")
    for k, v in value.items():
      assign(c, f"{key}.{k}", v)
    return
  try:
    node[leaf] = value
  except TypeError:
    kind = type(old).__name__
    article = "an" if kind[0] in "aeiou" else "a"
    raise ALError(f"{key}={value!r} has the wrong type: must be {article} {kind} "
                  f"(like {old!r})") from None


def _flatten_sections(pairs) -> List[Tuple[str, Any]]:
  """(key, value) pairs with a dict given for a base section (`optim`, `model.kwargs`)
  spelled as one pair per setting, so every layer names the keys it sets (the model swap and
  the member-clash checks read them)."""
  out = []
  for key, value in pairs:
    sections = key.split(".")[:-1]
    if isinstance(value, dict) and not any(p.endswith("kwargs") for p in sections):
      if not value:
        raise ALError(f"{key}={{}}: an empty dict sets nothing")
      out += _flatten_sections([(f"{key}.{k}", v) for k, v in value.items()])
    else:
      out.append((key, value))
  return out


def apply_overrides(config, overrides: Dict[str, Any]):
  """Sets every dotted key of `overrides` (tests and harnesses; runs go through resolve)."""
  for key, value in overrides.items():
    assign(config, key, value)
  return config


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


def pairing(method: Optional[str] = None, objective: Optional[str] = None,
            acquisition: Optional[str] = None) -> Tuple[str, str, str]:
  """(name, objective, acquisition) of a run spelled by any mix of the three.

  The name is `method` when its pairing is the one run, else the registered method of that
  pairing (`--objective=supervised --acquisition=cod` is `tod_active_only`), else
  "objective+acquisition". Without a method the pairing starts from `random`'s.
  """
  from al_jax.acquisition import ACQUISITIONS
  from al_jax.methods import canonical_method, get_method
  from al_jax.objectives import OBJECTIVES
  if method is not None and not method.strip():
    raise ALError("empty method name")
  base = get_method(method or "random")
  obj = objective or base.objective
  acq = acquisition or base.acquisition
  OBJECTIVES.get(obj)
  ACQUISITIONS.get(acq)
  if method and (obj, acq) == (base.objective, base.acquisition):
    return method, obj, acq
  return canonical_method(obj, acq) or f"{obj}+{acq}", obj, acq


def resolve(method: Optional[str] = None, dataset: str = "digits", preset: str = "cpu",
            protocol: str = "", objective: Optional[str] = None,
            acquisition: Optional[str] = None,
            overrides: Sequence[Tuple[str, Any]] = (),
            member: Sequence[Tuple[str, Any]] = (),
            schedule_of: Optional[Dict[str, Any]] = None) -> Resolved:
  """The config of one run, resolved layer by layer (module docstring).

  Args:
    method, objective, acquisition: the pairing, spelled any way (`pairing`).
    dataset, preset, protocol: which preset tables apply.
    overrides: the command line's (key, value) pairs, in order.
    member: a ledger member's defining (key, value) pairs: applied after the command line;
      a command-line key that a member defines is refused.
    schedule_of: dotted key → value copied from another run's resolved config (a ledger
      member trained on another method's schedule), applied just before the command line.
  """
  import ml_collections
  from experiments.configs import base
  if preset not in PRESETS:
    raise ALError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
  from al_jax.data import DATASETS
  DATASETS.get(dataset)  # an unknown name: one line, before any layer reads it
  name, obj, acq = pairing(method, objective, acquisition)
  tables = importlib.import_module(f"experiments.configs.{preset}")
  if protocol:
    from experiments.configs import protocols
    protocols.protocol_overrides(protocol, preset, dataset)  # unknown: one-line error
  layers: List[Tuple[str, Dict[str, Any]]] = tables.layers(name, obj, acq, dataset, protocol)
  if schedule_of:
    layers.append(("schedule", dict(schedule_of)))
  overrides = _flatten_sections(overrides)
  member = _flatten_sections(member)
  clash = sorted({k for k, _ in overrides} & {k for k, _ in member})
  if clash:
    raise ALError(f"--set {clash[0]} conflicts with the ledger member's own setting of it "
                  "(a member's defining settings cannot be overridden)")
  layers.append(("command line", dict(overrides)))
  layers.append(("ledger member", dict(member)))
  # The model layer belongs to the model that is finally run (a method or the command line
  # may change `model.name` after the dataset's layer).
  model = "small_cnn"
  for _, layer in layers:
    model = layer.get("model.name", model)
  model_layer = tables.model_layer(model, dataset)
  at = next(i for i, (label, _) in enumerate(layers) if not label.startswith("dataset"))
  layers.insert(at, (f"model ({model})", model_layer))

  c = base.get_config()
  c.method, c.objective, c.acquisition = name, obj, acq
  c.dataset, c.preset, c.protocol = dataset, preset, protocol
  sources: Dict[str, str] = {}
  if name != "random":
    sources["method"] = "pairing"
  for key, src in (("objective", obj != "supervised"), ("acquisition", acq != "random"),
                   ("dataset", dataset != "digits"), ("preset", preset != "cpu"),
                   ("protocol", bool(protocol))):
    if src:
      sources[key] = "pairing" if key in ("objective", "acquisition") else "command line"
  def model_changes(name: str) -> None:
    # Model settings belong to the model: a layer that swaps the model drops the ones set
    # for the previous model (and the preset's ones for the final model apply again).
    c.model.kwargs = ml_collections.ConfigDict()
    for k in [k for k in sources if k.startswith("model.kwargs.")]:
      del sources[k]
    if name == model:
      for k, v in model_layer.items():
        assign(c, k, v)
        sources[k] = f"model ({model})"

  for label, layer in layers:
    if "model.name" in layer and layer["model.name"] != c.model.name:
      model_changes(layer["model.name"])
    for key, value in layer.items():
      if key in ("method", "objective", "acquisition", "dataset", "preset", "protocol"):
        raise ALError(f"--set {key}=... is not a setting; use --{key}")
      if isinstance(value, AtLeast):
        if get_node(c, key) >= value.value:
          continue  # already at least the bound: the earlier layer's value stands
        value = value.value
      if isinstance(value, dict):  # a whole sub-config (e.g. a pretext task's optimiser)
        value = ml_collections.ConfigDict(value)
      assign(c, key, value)
      sources[key] = label
  order = {label: i for i, (label, _) in enumerate(layers)}
  from experiments.configs import schema
  for d in DERIVED:
    ratio = get_node(c, d.ratio)
    schema.check_key(d.ratio, ratio)
    if not ratio:
      continue
    section, _, leaf = d.target.rpartition(".")
    if section.endswith("kwargs") and leaf not in schema.settings_of(c, section):
      raise ALError(f"{d.ratio}={ratio!r} sets {d.target}, which "
                    f"{section.split('_')[0]} {get_node(c, section.split('_')[0])!r} does "
                    "not have")
    ratio_at = order.get(sources.get(d.ratio), -1)
    target_at = order.get(sources.get(d.target), -1)
    if target_at > ratio_at:
      continue  # set explicitly after the ratio: the explicit value wins
    assign(c, d.target, d.fn(c, ratio))
    sources[d.target] = f"derived: {d.ratio} ({d.text})"
  check(c)
  return Resolved(c, sources)


def check(config) -> None:
  """Every setting in its declared range (schema.py) and the pairing's contract (the
  acquisition's `requires` ⊆ the objective's `provides`): one-line ALError otherwise."""
  from al_jax.methods import check_pairing
  from experiments.configs import schema
  check_pairing(config.objective, config.acquisition)
  schema.check(config)


def get_config(method: str, dataset: str, preset: str = "cpu", protocol: str = ""):
  """The preset's config for (method, dataset); `protocol` names a paper whose schedule every
  method of its comparison runs under (experiments/configs/protocols.py)."""
  return resolve(method, dataset, preset, protocol).config
