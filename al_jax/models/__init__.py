"""Classifier registry: Flax linen modules chosen by name from the config.

Contract shared by every registered classifier (loss predictors, critics, TOD, core-set and
the NTK code rely on it):

  logits, features = model.apply(variables, x, train=False, dropout=None)

- `x`: float32 [B,H,W,C], already normalised.
- `train`: BatchNorm uses batch statistics; pass `mutable=["batch_stats"]` to `apply`.
- `dropout`: samples dropout masks (needs `rngs={"dropout": key}`); defaults to `train`, and
  `train=False, dropout=True` gives MC dropout with BatchNorm in inference mode.
- `features["stages"]`: tuple of intermediate maps [B,h,w,c] (ResNet: 4 stages, WRN: 3
  groups, small CNN: its conv blocks, MLP: hidden activations as [B,1,1,D]).
- `features["embedding"]`: [B,D], the input of the classifier layer before its dropout mask
  (the MLP also drops out between hidden layers, so its embedding varies under MC dropout).
- The classifier layer is the submodule named `"head"` (`params["head"]`).

Usage:

  model = get_model("resnet18", num_classes=10, width_multiplier=0.25)
"""

import dataclasses
from typing import Any, Callable

import flax.linen as nn

from al_jax import ALError
from al_jax.models.cnn import MLP, SmallCNN, max_pool_2x2
from al_jax.models.resnet import BasicBlock, ResNet
from al_jax.models.wrn import WideBlock, WideResNet
from al_jax.registry import Registry

MODELS: Registry = Registry("model")


def _register(name: str, cls: type, **defaults: Any) -> None:
  """Registers `cls` under `name`; `defaults` are fixed (repeating the same value is allowed)."""
  fields = {f.name for f in dataclasses.fields(cls)} - {"parent", "name", "num_classes"}
  fixed = set(defaults)

  def factory(num_classes: int, **kwargs: Any) -> nn.Module:
    unknown = sorted(set(kwargs) - fields)
    if unknown:
      raise ALError(f"model {name!r} got unknown option(s) {', '.join(unknown)}; "
                    f"valid: {', '.join(sorted(fields))}")
    clash = sorted(fixed & set(kwargs))
    as_tuple = lambda v: tuple(v) if isinstance(v, list) else v  # Config values may be lists.
    if any(as_tuple(kwargs[k]) != defaults[k] for k in clash):
      # `resnet18` with other stage sizes, or `wrn28_2` with another depth, would be a
      # different model under a misleading name.
      raise ALError(f"model {name!r} fixes {', '.join(clash)}; use the generic model instead")
    return cls(num_classes=num_classes, **{**defaults, **kwargs})

  factory.__doc__ = f"Builds {cls.__name__}({defaults}) for `num_classes` classes."
  factory.model_class, factory.fixed = cls, dict(defaults)  # for `--list`
  MODELS.register(name)(factory)


_register("mlp", MLP)
_register("small_cnn", SmallCNN)
_register("resnet18", ResNet, stage_sizes=(2, 2, 2, 2))
_register("wrn28_2", WideResNet, depth=28, widen_factor=2)
_register("wrn", WideResNet)
# ARAL's discriminators (they hold the target classifier): al_jax/models/generative.py.
from al_jax.models.generative import GanCNN, NoisyMLP  # noqa: E402
_register("noisy_mlp", NoisyMLP)
_register("gan_cnn", GanCNN)


def get_model(name: str, num_classes: int, **kwargs: Any) -> nn.Module:
  """Builds the registered classifier `name`.

  Args:
    name: a registered model name (`MODELS.names()`).
    num_classes: number of output logits.
    **kwargs: module attributes to override, e.g. `widths=(16, 32)` for `small_cnn` or
      `width_multiplier=0.25` for `resnet18`.

  Returns:
    An unbound `flax.linen.Module` following the contract in this module's docstring.

  Raises:
    ALError: unknown model name or option.
  """
  factory: Callable[..., nn.Module] = MODELS.get(name)
  return factory(num_classes, **kwargs)


__all__ = [
    "MODELS", "get_model", "MLP", "SmallCNN", "ResNet", "BasicBlock", "WideResNet",
    "WideBlock", "max_pool_2x2",
]
