"""A PyTorch reference of al_jax's small CNN and CIFAR ResNet-18 (the `vs_torch` benchmark).

Needs the optional extra: `pip install -e .[torch]` (see pyproject.toml for the CPU-only
wheel). Without PyTorch this module still imports (the benchmark loads every section
module); `available()` is False and every function raises `ALError` with `INSTALL_HINT`.

What is reproduced, layer for layer, from `al_jax.models`:

* `SmallCNN`: [Conv3×3 (pad 1, no bias) → BN → ReLU → MaxPool2×2] per width, the pool skipped
  once the map is 2×2 or smaller (odd sizes floor, as `al_jax.models.cnn.max_pool_2x2`), then
  GAP or flatten → Dense → ReLU → Dropout → Dense "head". Init as al_jax's: convs untruncated
  He-normal fan_out (`kaiming_normal_(mode="fan_out")`), Dense layers Flax's default
  lecun-normal (a normal truncated at ±2σ, rescaled by 1/0.8796 so the std is 1/√fan_in) with
  zero bias.
* `ResNet`: the CIFAR ResNet-18 (3×3 stride-1 stem, no max-pool, BasicBlocks with a 1×1
  projection + BN when the shape changes, GAP, one linear head) — kuangliu/pytorch-cifar's
  model as LPLgrad ships it (sgchr273/LPLgrad models/resnet.py at cdd7c5f, minus its unused
  second head `linear1`). `weight_init="pytorch_default"` keeps PyTorch's Conv2d/Linear
  defaults, which is what al_jax's option of that name draws from; "he_normal" matches that
  al_jax option.

Conventions that differ between the frameworks and how they are mapped:

* Layout: al_jax is NHWC (`[B,H,W,C]`, conv kernels HWIO), PyTorch NCHW (kernels OIHW).
  The functions here take NCHW uint8 tensors; `to_nchw` converts a batch once, outside any
  timing (a PyTorch data loader hands the model NCHW tensors).
* BatchNorm momentum: Flax's 0.9 (running = 0.9·running + 0.1·batch) is PyTorch's 0.1; eps
  1e-5 in both, inside the square root. Train-mode normalisation uses the biased batch
  variance in both; PyTorch's running variance is updated with the *unbiased* one (×n/(n−1)),
  Flax's with the biased one, so running statistics drift apart slightly in training mode.
  Inference mode (running statistics) is identical, which is what the logit match checks.
* Flatten order: al_jax flattens [h,w,c], PyTorch [c,h,w]; `port_variables` permutes the
  rows of the Dense kernel that follows a flatten.
* Dropout: both inverted dropout; the masks come from different generators.

Per-sample gradient norms are computed the way LPLgrad's public code does
(sgchr273/LPLgrad main.py at cdd7c5f, `get_uncertainty` with SCHEME 1 and
`compute_gradnorm`): a loader with batch size 1, the model in eval mode, the entropy of the
softmax as a loss (not detached), one backward pass per sample, then the norms of the
parameters' `.grad` (summed per tensor there: `norm="sum"`; LPLgrad Eq. 8's Frobenius norm
is `norm="global"`). Pool scoring is written the way the papers' public code scores an
unlabeled set: `model.eval()`, `torch.no_grad()`, batches from a sequential loader, the
scores concatenated (LL4AL's `get_uncertainty`, Mephisto405/Learning-Loss-for-Active-Learning
main.py at e176645, with the softmax entropy in place of the loss module).
"""

import math
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from al_jax import ALError

try:  # the optional [torch] extra
  import torch
  import torch.nn.functional as F
  from torch import nn
except ModuleNotFoundError:
  torch = F = nn = None

INSTALL_HINT = ("install the [torch] extra: pip install -e .[torch] (CPU-only wheel: "
                "pip install torch --index-url https://download.pytorch.org/whl/cpu)")

# The class bodies below only touch torch when a model is built.
_Module = nn.Module if nn is not None else object


def available() -> bool:
  """True when PyTorch is importable."""
  return torch is not None


def require() -> None:
  if torch is None:
    raise ALError(f"PyTorch is not installed; {INSTALL_HINT}")


def _lecun_normal_(w) -> None:
  """Flax's default Dense kernel init on a PyTorch [out, in] weight.

  `variance_scaling(1, "fan_in", "truncated_normal")`: a standard normal truncated at ±2,
  scaled by √(1/fan_in)/0.87962566 (0.8796 is the std of that truncated normal), so the
  weights have std 1/√fan_in and lie within ±2·√(1/fan_in)/0.8796.
  """
  std = math.sqrt(1.0 / w.shape[1]) / 0.87962566103423978
  nn.init.trunc_normal_(w, 0.0, std, -2.0 * std, 2.0 * std)


def _bn(width: int, momentum: float, eps: float):
  # Flax's momentum m keeps m of the running average; PyTorch's keeps 1 − m.
  return nn.BatchNorm2d(width, eps=eps, momentum=1.0 - momentum)


class SmallCNN(_Module):
  """`al_jax.models.cnn.SmallCNN` in PyTorch (NCHW); submodule names follow Flax's.

  Args:
    num_classes, widths, hidden, flatten, dropout_rate, bn_momentum (Flax convention),
      bn_epsilon: as the al_jax attributes of the same names.
    input_shape: (H, W, C) of the inputs (Flax infers layer sizes from the first call;
      PyTorch needs them to size the Dense layer after a flatten).
  """

  def __init__(self, num_classes: int, input_shape: Tuple[int, int, int],
               widths: Sequence[int] = (32, 64), hidden: int = 128, flatten: bool = False,
               dropout_rate: float = 0.25, bn_momentum: float = 0.9, bn_epsilon: float = 1e-5):
    require()
    super().__init__()
    h, w, c = input_shape
    self.pool = []
    for i, width in enumerate(widths):
      conv = nn.Conv2d(c, width, 3, padding=1, bias=False)
      nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
      self.add_module(f"Conv_{i}", conv)
      self.add_module(f"BatchNorm_{i}", _bn(width, bn_momentum, bn_epsilon))
      # al_jax pools after the ReLU when the conv's output map is larger than 2×2.
      self.pool.append(min(h, w) > 2)
      if self.pool[-1]:
        h, w = h // 2, w // 2
      c = width
    self.widths, self.flatten, self.hidden = tuple(widths), flatten, hidden
    features = c * h * w if flatten else c
    # The map the first Dense layer sees flattened, in al_jax's [h, w, c] order.
    self.flat_hwc = (h, w, c) if flatten else None
    dense = []
    if hidden:
      self.Dense_0 = nn.Linear(features, hidden)
      dense.append(self.Dense_0)
      features = hidden
    self.dropout = nn.Dropout(dropout_rate)
    self.head = nn.Linear(features, num_classes)
    dense.append(self.head)
    for lin in dense:
      _lecun_normal_(lin.weight)
      nn.init.zeros_(lin.bias)

  def forward(self, x):
    for i in range(len(self.widths)):
      x = F.relu(getattr(self, f"BatchNorm_{i}")(getattr(self, f"Conv_{i}")(x)))
      if self.pool[i]:
        x = F.max_pool2d(x, 2)  # floors odd sizes, as al_jax's VALID max-pool
    x = torch.flatten(x, 1) if self.flatten else x.mean((2, 3))
    if self.hidden:
      x = F.relu(self.Dense_0(x))
    return self.head(self.dropout(x))


class BasicBlock(_Module):
  """`al_jax.models.resnet.BasicBlock`: conv → BN → ReLU → conv → BN, + shortcut, → ReLU."""

  def __init__(self, in_planes: int, planes: int, stride: int, bn_momentum: float,
               bn_epsilon: float):
    super().__init__()
    self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, padding=1, bias=False)
    self.bn1 = _bn(planes, bn_momentum, bn_epsilon)
    self.conv2 = nn.Conv2d(planes, planes, 3, 1, padding=1, bias=False)
    self.bn2 = _bn(planes, bn_momentum, bn_epsilon)
    self.project = stride != 1 or in_planes != planes
    if self.project:  # option B: 1×1 projection + BN whenever the shape changes
      self.proj_conv = nn.Conv2d(in_planes, planes, 1, stride, bias=False)
      self.proj_bn = _bn(planes, bn_momentum, bn_epsilon)

  def forward(self, x):
    y = F.relu(self.bn1(self.conv1(x)))
    y = self.bn2(self.conv2(y))
    shortcut = self.proj_bn(self.proj_conv(x)) if self.project else x
    return F.relu(y + shortcut)


class ResNet(_Module):
  """`al_jax.models.resnet.ResNet` (CIFAR stem) in PyTorch; `stage_sizes=(2,2,2,2)` is ResNet-18.

  Args mirror the al_jax attributes (`bn_momentum` in Flax's convention); `in_channels`
  is the input's C.
  """

  def __init__(self, num_classes: int, in_channels: int = 3,
               stage_sizes: Sequence[int] = (2, 2, 2, 2), width_multiplier: float = 1.0,
               dropout_rate: float = 0.0, bn_momentum: float = 0.9, bn_epsilon: float = 1e-5,
               weight_init: str = "pytorch_default"):
    require()
    super().__init__()
    if weight_init not in ("pytorch_default", "he_normal"):
      raise ALError(f"unknown resnet weight_init {weight_init!r}; valid: he_normal, "
                    "pytorch_default")
    width = lambda base: max(1, int(round(base * width_multiplier)))
    self.stem_conv = nn.Conv2d(in_channels, width(64), 3, padding=1, bias=False)
    self.stem_bn = _bn(width(64), bn_momentum, bn_epsilon)
    self.blocks = []
    planes = width(64)
    for i, n in enumerate(stage_sizes):
      for j in range(n):
        out = width(64 * 2**i)
        name = f"stage{i + 1}_block{j}"
        self.add_module(name, BasicBlock(planes, out, 2 if (i > 0 and j == 0) else 1,
                                         bn_momentum, bn_epsilon))
        self.blocks.append(name)
        planes = out
    self.dropout = nn.Dropout(dropout_rate)
    self.head = nn.Linear(planes, num_classes)
    if weight_init == "he_normal":
      for m in self.modules():
        if isinstance(m, nn.Conv2d):
          nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
      _lecun_normal_(self.head.weight)
      nn.init.zeros_(self.head.bias)
    # "pytorch_default": Conv2d's and Linear's own init, kaiming_uniform_(a=√5), as kept.

  def forward(self, x):
    x = F.relu(self.stem_bn(self.stem_conv(x)))
    for name in self.blocks:
      x = getattr(self, name)(x)
    return self.head(self.dropout(x.mean((2, 3))))


def build(name: str, num_classes: int, input_shape: Tuple[int, int, int], **kwargs: Any):
  """The PyTorch twin of `al_jax.models.get_model(name, num_classes, **kwargs)`."""
  require()
  if name == "small_cnn":
    return SmallCNN(num_classes, tuple(input_shape), **kwargs)
  if name == "resnet18":
    return ResNet(num_classes, input_shape[-1], stage_sizes=(2, 2, 2, 2), **kwargs)
  raise ALError(f"no PyTorch reference for model {name!r}; valid: resnet18, small_cnn")


# --- weights -----------------------------------------------------------------------------------
def _flatten(tree, prefix=()):
  for k, v in tree.items():
    if isinstance(v, dict) or hasattr(v, "items"):
      yield from _flatten(v, prefix + (k,))
    else:
      yield prefix + (k,), v


def port_variables(variables: Dict[str, Any], model) -> Dict[str, Any]:
  """al_jax variables `{"params", "batch_stats"}` → a full state_dict for the PyTorch twin.

  Conv kernels HWIO → OIHW, Dense kernels [in, out] → [out, in] (rows of a Dense after a
  flatten permuted from [h,w,c] to [c,h,w] order), BN scale/bias → weight/bias, batch_stats
  mean/var → running_mean/running_var. Every al_jax leaf must land on a PyTorch entry of
  the same shape and every PyTorch parameter and buffer (but `num_batches_tracked`) must
  be set, so a model mismatch fails here rather than in a numerical comparison.
  """
  require()
  target = model.state_dict()
  out = {}
  bn_names = {"scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}
  for coll in ("params", "batch_stats"):
    for path, leaf in _flatten(dict(variables.get(coll, {}))):
      a = np.asarray(leaf, np.float32)
      mod, leafname = ".".join(path[:-1]), path[-1]
      if leafname == "kernel" and a.ndim == 4:
        key, a = f"{mod}.weight", a.transpose(3, 2, 0, 1)
      elif leafname == "kernel" and a.ndim == 2:
        flat = getattr(model, "flat_hwc", None)
        if flat is not None and mod == ("Dense_0" if model.hidden else "head"):
          h, w, c = flat
          a = a.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(h * w * c, -1)
        key, a = f"{mod}.weight", a.T
      elif leafname in bn_names:  # BN scale/bias/mean/var, and Dense biases ("bias" → bias)
        key = f"{mod}.{bn_names[leafname]}"
      else:
        raise ALError(f"cannot port al_jax variable {coll}/{'/'.join(path)}")
      if key not in target or tuple(target[key].shape) != a.shape:
        got = tuple(target[key].shape) if key in target else "missing"
        raise ALError(f"al_jax {coll}/{'/'.join(path)} {a.shape} has no PyTorch twin "
                      f"({key}: {got})")
      out[key] = torch.tensor(np.ascontiguousarray(a))
  missing = sorted(k for k in target if k not in out and not k.endswith("num_batches_tracked"))
  if missing:
    raise ALError(f"PyTorch entries not set from al_jax variables: {', '.join(missing)}")
  for k in target:
    if k.endswith("num_batches_tracked"):
      out[k] = target[k]
  return out


def load_variables(model, variables: Dict[str, Any]):
  """Copies al_jax variables into `model` (strict) and returns it."""
  model.load_state_dict(port_variables(variables, model), strict=True)
  return model


# --- data ----------------------------------------------------------------------------------------
def to_nchw(x: np.ndarray):
  """NHWC (al_jax) uint8/float array → a contiguous NCHW tensor."""
  require()
  return torch.from_numpy(np.ascontiguousarray(np.asarray(x).transpose(0, 3, 1, 2)))


def normalize(x, mean: Sequence[float], std: Sequence[float]):
  """uint8 NCHW → float32, per channel (x/255 − mean)/std: `al_jax.data.augment.normalize`."""
  m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
  s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
  return (x.float() / 255.0 - m) / s


# --- training -----------------------------------------------------------------------------------
def make_optimizer(model, optim_cfg):
  """The PyTorch optimiser that `al_jax.optim.make_optimizer(optim_cfg)` mirrors.

  al_jax's SGD and Adam add weight decay to the gradient (`optax.add_decayed_weights` before
  the update), which is PyTorch's `weight_decay` for SGD and Adam; AdamW decays the weights
  scaled by the learning rate in both. Adam's eps 1e-8 sits outside the square root in both.
  Learning-rate schedules are per epoch in al_jax, so a step sees a constant rate.
  """
  require()
  name, lr = optim_cfg.name, float(optim_cfg.lr)
  wd = float(optim_cfg.get("weight_decay", 0.0))
  params = model.parameters()
  if name == "sgd":
    return torch.optim.SGD(params, lr=lr, momentum=float(optim_cfg.get("momentum", 0.9)),
                           nesterov=bool(optim_cfg.get("nesterov", False)), weight_decay=wd)
  betas = (float(optim_cfg.get("b1", 0.9)), float(optim_cfg.get("b2", 0.999)))
  if name == "adam":
    return torch.optim.Adam(params, lr=lr, betas=betas, eps=1e-8, weight_decay=wd)
  if name == "adamw":
    return torch.optim.AdamW(params, lr=lr, betas=betas, eps=1e-8, weight_decay=wd)
  raise ALError(f"unknown optimizer {name!r}; valid: adam, adamw, sgd")


def train_step(model, optimizer, x_uint8, y, mean, std, grad_clip: float = 0.0):
  """One supervised step (`al_jax.objectives.supervised.Supervised.train_step` without
  augmentation): normalise, train-mode forward, mean cross-entropy, backward, update.

  Returns the loss (a detached scalar tensor).
  """
  model.train()
  optimizer.zero_grad(set_to_none=True)
  loss = F.cross_entropy(model(normalize(x_uint8, mean, std)), y)
  loss.backward()
  if grad_clip:
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
  optimizer.step()
  return loss.detach()


# --- acquisition scores ---------------------------------------------------------------------------
def _entropy(logits):
  logp = F.log_softmax(logits.float(), dim=1)
  return -(logp.exp() * logp).sum(1)


def entropy_scores(model, x_uint8, mean, std, batch_size: int = 256):
  """Softmax entropy of every row of an NCHW uint8 pool, batched under `torch.no_grad()`."""
  model.eval()
  out = []
  with torch.no_grad():
    for i in range(0, x_uint8.shape[0], batch_size):
      out.append(_entropy(model(normalize(x_uint8[i:i + batch_size], mean, std))))
  return torch.cat(out)


def entropy_gradnorms(model, x_uint8, mean, std, norm: str = "sum"):
  """‖∇_θ H(softmax f_θ(x))‖ per sample by a batch-1 backward loop (LPLgrad's public code).

  norm: "sum" of per-tensor L2 norms (the public code) or "global" (LPLgrad Eq. 8), as
  `al_jax.acquisition.gradnorm.aggregate_norm`. Parameters without a gradient are skipped.
  """
  if norm not in ("global", "sum"):
    raise ALError(f"unknown gradient norm {norm!r}; valid: global, sum")
  model.eval()
  params = [p for p in model.parameters() if p.requires_grad]
  out = torch.empty(x_uint8.shape[0])
  for i in range(x_uint8.shape[0]):
    model.zero_grad(set_to_none=True)
    # Eq. 7: the entropy is the loss, p is not detached.
    _entropy(model(normalize(x_uint8[i:i + 1], mean, std)))[0].backward()
    norms = torch.stack([p.grad.norm() for p in params if p.grad is not None])
    out[i] = norms.sum() if norm == "sum" else norms.square().sum().sqrt()
  return out


def eval_logits(model, x_uint8, mean, std):
  """Inference-mode logits of an NCHW uint8 batch (running BN statistics, no dropout)."""
  model.eval()
  with torch.no_grad():
    return model(normalize(x_uint8, mean, std))
