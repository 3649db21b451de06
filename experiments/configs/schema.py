"""The valid range or choice set of every setting, checked once on the resolved config.

`check(config)` runs before any work (no data, no JAX): a setting that cannot make sense — a
negative learning rate, zero ECE bins, a fraction above 1, a component setting the component
does not have — is one line naming the key, the value and what is valid. Base fields are
declared in `BASE`; component settings (objective_kwargs, acquisition_kwargs, model.kwargs) in
`OBJECTIVES`, `ACQUISITIONS` and `MODELS`, keyed by the component's registered name (a subclass
inherits its parent's declarations). tests/test_config_schema.py checks that every numeric
field of base.py and of every registered component has a declaration and that each
declaration refuses a value outside it.
"""

import dataclasses
import inspect
import math
from typing import Any, Dict, Optional, Tuple

from al_jax import ALError


@dataclasses.dataclass(frozen=True)
class Num:
  """A number in [lo, hi] (open ends with lo_open / hi_open); `integer` refuses fractions."""
  lo: float = -math.inf
  hi: float = math.inf
  lo_open: bool = False
  hi_open: bool = False
  integer: bool = False

  def ok(self, v) -> bool:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
      return False
    if self.integer and float(v) != int(v):
      return False
    if not math.isfinite(v):
      return False
    above = v > self.lo if self.lo_open else v >= self.lo
    below = v < self.hi if self.hi_open else v <= self.hi
    return above and below

  def text(self) -> str:
    kind = "an integer" if self.integer else "a number"
    parts = []
    if self.lo > -math.inf:
      parts.append(f"{'>' if self.lo_open else '≥'} {self.lo:g}")
    if self.hi < math.inf:
      parts.append(f"{'<' if self.hi_open else '≤'} {self.hi:g}")
    return kind + (" " + " and ".join(parts) if parts else "")

  def invalid(self):
    """A value outside the range (for the table-driven test)."""
    if self.lo > -math.inf:
      return self.lo - 1 if not self.lo_open else self.lo
    return self.hi + 1 if not self.hi_open else self.hi


@dataclasses.dataclass(frozen=True)
class Each:
  """A tuple whose every element satisfies `item` (and has ≥ `min_len` elements)."""
  item: Num
  min_len: int = 0

  def ok(self, v) -> bool:
    return (isinstance(v, (tuple, list)) and len(v) >= self.min_len
            and all(self.item.ok(x) for x in v))

  def text(self) -> str:
    return f"a tuple of {self.min_len}+ items, each {self.item.text()}"

  def invalid(self):
    return (self.item.invalid(),)


@dataclasses.dataclass(frozen=True)
class OneOf:
  values: Tuple[Any, ...]

  def ok(self, v) -> bool:
    return any(v == x and type(v) is type(x) for x in self.values)

  def text(self) -> str:
    return "one of " + ", ".join(map(repr, self.values))

  def invalid(self):
    return "not-a-choice"


@dataclasses.dataclass(frozen=True)
class Optional_:
  """None, or a value `inner` accepts."""
  inner: Any

  def ok(self, v) -> bool:
    return v is None or self.inner.ok(v)

  def text(self) -> str:
    return f"None or {self.inner.text()}"

  def invalid(self):
    return self.inner.invalid()


@dataclasses.dataclass(frozen=True)
class Text:
  """A string (a path; "" = the default)."""

  def ok(self, v) -> bool:
    return isinstance(v, str)

  def text(self) -> str:
    return "a string"

  def invalid(self):
    return None


def _int(lo=-math.inf, hi=math.inf):
  return Num(lo, hi, integer=True)


POS_INT = _int(1)
NONNEG_INT = _int(0)
POS = Num(0, lo_open=True)
NONNEG = Num(0)
UNIT = Num(0, 1)                    # a fraction or probability
DECAY = Num(0, 1, hi_open=True)     # an EMA / momentum / Adam β
BOOL = OneOf((True, False))

BASE: Dict[str, Any] = {
    "seed": NONNEG_INT, "log_every": POS_INT,
    "al.initial": POS_INT, "al.budget": POS_INT, "al.cycles": POS_INT, "al.subset": NONNEG_INT,
    "al.val_size": NONNEG_INT, "al.pool_copies": POS_INT,
    "train.epochs": POS_INT, "train.batch_size": POS_INT, "train.unlabeled_batch_size": POS_INT,
    "train.min_steps_per_epoch": NONNEG_INT, "train.crop_pad": _int(-1),
    "train.flip": OneOf(("dataset", "on", "off")), "train.early_stopping_patience": NONNEG_INT,
    "train.initial_trials": POS_INT, "train.initial_trials_redraw": OneOf(("pool", "init")),
    "optim.name": OneOf(("adam", "adamw", "sgd")), "optim.lr": POS, "optim.momentum": DECAY,
    "optim.b1": DECAY, "optim.b2": DECAY, "optim.weight_decay": NONNEG,
    "optim.grad_clip": NONNEG, "optim.schedule": OneOf(("constant", "step", "cosine", "cosine_7_16")),
    "optim.milestones": Each(POS_INT), "optim.gamma": Num(0, 1, lo_open=True),
    "optim.warmup_epochs": NONNEG_INT,
    "parallel.devices": NONNEG_INT, "eval.chunk_size": POS_INT, "eval.ece_bins": POS_INT,
    "derive.unlabeled_ratio": NONNEG, "derive.rampup_fraction": UNIT,
    "derive.detach_fraction": UNIT, "derive.group_fraction": UNIT,
    "derive.cosine_fraction": NONNEG,
    # None would pass ml_collections' type check and read as False (or the default path).
    "diagnostics": BOOL, "al.class_balanced": BOOL, "al.full_labels": BOOL,
    "train.warm_start": BOOL, "train.augment": BOOL, "train.early_stopping": BOOL,
    "optim.nesterov": BOOL, "data_dir": Text(),
}

_ARAL = {
    "latent_dim": POS_INT, "mlp_hidden": Each(POS_INT, 1), "enc_widths": Each(POS_INT, 1),
    "gen_widths": Each(POS_INT, 1), "kernel": POS_INT, "sampler_hidden": Each(POS_INT, 1),
    "lambda_gan": NONNEG, "lambda_cls": NONNEG, "lambda_trd": NONNEG, "lambda_adv": NONNEG,
    "beta": NONNEG, "fm_weight": NONNEG, "eg_lr": POS, "eg_b1": DECAY, "eg_b2": DECAY,
    "sampler_lr": POS, "sampler_b1": DECAY, "sampler_b2": DECAY, "rf_hidden": POS_INT,
    "use_encoder": BOOL, "sampler": BOOL,
}
OBJECTIVES: Dict[str, Dict[str, Any]] = {
    "aral": _ARAL,
    "critic": {"gamma": NONNEG, "stop_fraction": UNIT, "clip": POS, "critic_lr": POS,
               "critic_weight_decay": NONNEG, "width": POS_INT, "num_stages": POS_INT,
               "generator": BOOL, "normalize_inputs": BOOL},
    "fixmatch": {"threshold": UNIT, "lambda_u": NONNEG, "temperature": POS, "ema_decay": DECAY,
                 "ema_batch_stats": BOOL, "cosine_7_16": BOOL, "cosine_steps": _int(-1),
                 "steps_per_epoch": POS_INT,
                 "randaugment_n": POS_INT, "randaugment_m": _int(0, 30), "cutout": UNIT},
    "loss_pred": {"margin": NONNEG, "weight": NONNEG, "detach_epoch": NONNEG_INT,
                  "hidden": POS_INT, "module_lr_decay": BOOL},
    "mean_teacher": {"ema_decay": DECAY, "consistency": NONNEG, "rampup_steps": NONNEG_INT,
                     "noise_std": NONNEG},
    "tod_ema": {"lam": NONNEG, "ema_decay": DECAY, "ema_warmup": BOOL},
    "vaal": {"latent_dim": POS_INT, "vae_widths": Each(POS_INT, 1), "vae_kernel": POS_INT,
             "sampler_hidden": Each(POS_INT, 1), "beta": NONNEG, "adversary_param": NONNEG,
             "vae_lr": POS, "sampler_lr": POS, "num_vae_steps": POS_INT,
             "num_adv_steps": POS_INT},
}
ACQUISITIONS: Dict[str, Dict[str, Any]] = {
    "bald": {"num_samples": _int(2)},
    "crc": {"group_size": NONNEG_INT, "max_jacobian_mb": POS, "rank_aware": BOOL},
    "egl": {"squared": BOOL, "grad_batch": POS_INT},
    "entropy_gradnorm": {"grad_batch": POS_INT},
    "pt4al": {"num_batches": POS_INT, "batch_size": POS_INT, "epochs": POS_INT},
    "vaal": {"vae_train_mode": BOOL, "batch_size": POS_INT},
}
_BN = {"bn_momentum": DECAY, "bn_epsilon": POS}
MODELS: Dict[str, Dict[str, Any]] = {
    "gan_cnn": {"widths": Each(POS_INT, 1), "dropout_rate": DECAY},
    "mlp": {"hidden": Each(POS_INT, 1), "dropout_rate": DECAY},
    "noisy_mlp": {"hidden": Each(POS_INT, 1), "input_noise": NONNEG, "noise": NONNEG},
    "resnet18": {"stage_sizes": Each(POS_INT, 1), "width_multiplier": POS,
                 "dropout_rate": DECAY, **_BN},
    "small_cnn": {"widths": Each(POS_INT, 1), "hidden": POS_INT, "flatten": BOOL,
                  "dropout_rate": DECAY, **_BN},
    "wrn": {"depth": _int(4), "widen_factor": POS_INT, "leakiness": NONNEG,
            "dropout_rate": DECAY, **_BN},
}
MODELS["wrn28_2"] = MODELS["wrn"]


# The constructor arguments the harness passes to an objective itself.
_HARNESS_ARGS = ("self", "model", "prep", "num_classes", "optim_cfg", "epochs")


def component_settings(cls) -> Dict[str, Any]:
  """name → default of every keyword setting of a component class (its constructor and its
  parents'; the arguments the harness passes to an objective itself are left out)."""
  from al_jax.objectives import Objective
  skip = _HARNESS_ARGS if issubclass(cls, Objective) else ("self",)
  if dataclasses.is_dataclass(cls):  # a Flax model
    return {f.name: f.default for f in dataclasses.fields(cls)
            if f.name not in ("parent", "name", "num_classes", "dtype")}
  out = {}
  for klass in cls.__mro__:
    init = klass.__dict__.get("__init__")
    if init is None or klass is object:
      continue
    for n, p in inspect.signature(init).parameters.items():
      if n in skip or p.kind in (
          p.VAR_POSITIONAL, p.VAR_KEYWORD):
        continue
      out.setdefault(n, p.default)
  return out


def declared(kind: str, name: str) -> Dict[str, Any]:
  """The declarations of component `name` of `kind` (objective, acquisition, model), its
  registered parents' included."""
  table = {"objective": OBJECTIVES, "acquisition": ACQUISITIONS, "model": MODELS}[kind]
  cls = _component_class(kind, name)
  out: Dict[str, Any] = {}
  for klass in reversed(getattr(cls, "__mro__", (cls,))):
    parent = getattr(klass, "name", None)
    if isinstance(parent, str) and parent in table:
      out.update(table[parent])
  out.update(table.get(name, {}))
  return out


def _component_class(kind: str, name: str):
  if kind == "objective":
    from al_jax.objectives import OBJECTIVES as reg
    return reg.get(name)
  if kind == "acquisition":
    from al_jax.acquisition import ACQUISITIONS as reg
    return reg.get(name)
  from al_jax.models import MODELS as reg
  return reg.get(name).model_class


def check_key(key: str, value) -> None:
  """One base setting against its declaration."""
  rule = BASE[key]
  if not rule.ok(value):
    _fail(key, value, rule)


def settings_of(config, section: str) -> Dict[str, Any]:
  """The settings the component configured by `section` (objective_kwargs, ...) has."""
  kind = {"objective_kwargs": "objective", "acquisition_kwargs": "acquisition",
          "model.kwargs": "model"}[section]
  name = config.model.name if kind == "model" else config[kind]
  return component_settings(_component_class(kind, name))


def _fail(key: str, value, rule) -> None:
  raise ALError(f"{key}={value!r} is out of range: must be {rule.text()}")


def _check_stochastic(config, acquisition: str) -> None:
  """An acquisition that samples dropout masks needs a model that has dropout."""
  model = config.model.name
  defaults = component_settings(_component_class("model", model))
  kwargs = config.model.kwargs.to_dict()
  rate = kwargs.get("dropout_rate", defaults.get("dropout_rate"))
  if rate is None:
    rate = kwargs.get("noise", defaults.get("noise", 0.0))  # noisy_mlp's Gaussian noise
  if not rate:
    raise ALError(f"acquisition {acquisition!r} samples dropout masks but model {model!r} has "
                  f"no dropout: set model.kwargs.dropout_rate > 0")


def check(config) -> None:
  """Refuses, with one line, the first setting of `config` outside its declared range, and
  component settings the component does not have."""
  from experiments.configs import get_node
  for key, rule in BASE.items():
    value = get_node(config, key)
    if not rule.ok(value):
      _fail(key, value, rule)
  # The learning-rate schedule's milestones must fall inside the cycle.
  for m in config.optim.milestones:
    if m > config.train.epochs and config.optim.schedule == "step":
      raise ALError(f"optim.milestones={tuple(config.optim.milestones)!r}: milestone {m} is "
                    f"past train.epochs={config.train.epochs}")
  for kind, section, name in (("objective", "objective_kwargs", config.objective),
                              ("acquisition", "acquisition_kwargs", config.acquisition),
                              ("model", "model.kwargs", config.model.name)):
    kwargs = get_node(config, section).to_dict()
    cls = _component_class(kind, name)
    known = component_settings(cls)
    if kind == "model":
      from al_jax.models import MODELS as reg
      fixed = reg.get(name).fixed
      bad = sorted(set(kwargs) & set(fixed))
      if bad:
        raise ALError(f"model.kwargs.{bad[0]} is fixed by model {name!r} "
                      f"({bad[0]}={fixed[bad[0]]!r})")
    unknown = sorted(set(kwargs) - set(known))
    if unknown:
      raise ALError(f"{section}.{unknown[0]}: {kind} {name!r} has no such setting; its "
                    f"settings: {', '.join(sorted(known)) or 'none'}")
    if kind == "acquisition" and getattr(cls, "stochastic_forward", False):
      _check_stochastic(config, name)
    rules = declared(kind, name)
    for k, v in kwargs.items():
      rule: Optional[Any] = rules.get(k)
      if rule is not None and not rule.ok(v):
        _fail(f"{section}.{k}", v, rule)
    # A component whose settings must agree with the schedule says so itself (PT4AL: one
    # batch per cycle), so the mismatch is refused here and not after cycles of training.
    hook = getattr(cls, "check_config", None)
    if hook is not None:
      hook({**known, **kwargs}, config)
