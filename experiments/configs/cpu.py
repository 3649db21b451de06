"""CPU-scale preset: one full AL run of any method on `digits` in a few minutes on 2 cores.

    python -m experiments.main --method=entropy --dataset=digits --workdir=/tmp/entropy
    # expected: 5 cycles, 40 → 200 labels, last-cycle test accuracy ≈ 0.97 (0.968–0.974 over seeds 0–2)

Method-specific settings live in `METHOD_OVERRIDES`; dataset-specific ones in
`DATASET_OVERRIDES`. Each entry overrides only what differs from base.py.
"""

from experiments.configs import base

# Models that learn: every cycle trains a fixed number of steps (epochs × min_steps_per_epoch,
# since a few hundred labels give fewer natural steps) with a cosine learning rate, and the
# small CNN flattens its last feature map (global average pooling lost to logistic regression
# on the raw pixels with few labels). Measured against the linear-probe floor
# (experiments/floors.py), 3 seeds: BUILD_NOTES "CPU presets".
_LEARN = {"optim.schedule": "cosine", "model.kwargs.flatten": True}
# 28×28 datasets start at 200 labels: at 100 the CNN beats the linear probe on the same labels
# by only 1.0 point (0.721 vs 0.711, fashion_mnist, 3 seeds); from 200 on by ≥ 3.
_MNIST_CPU = {**_LEARN, "al.initial": 200, "al.budget": 100, "al.subset": 5000,
              "train.epochs": 20, "train.min_steps_per_epoch": 30,
              "model.kwargs.widths": (32, 64, 128)}
DATASET_OVERRIDES = {
    "digits": {**_LEARN, "train.min_steps_per_epoch": 20},
    "synthetic": {},
    # Adam 2e-3: at 200 random labels (3 seeds, no flips) +0.3 points over 1e-3 (BUILD_NOTES
    # "CPU presets").
    "fashion_mnist": {**_MNIST_CPU, "optim.lr": 2e-3},
    "mnist": dict(_MNIST_CPU),
    "svhn": {"al.initial": 200, "al.budget": 200, "train.epochs": 15},
    "cifar10": {"al.initial": 200, "al.budget": 200, "train.epochs": 15},
    "cifar100": {"al.initial": 500, "al.budget": 500, "train.epochs": 15},
}

# method name → {dotted key: value}; each method's section below adds its entries.
METHOD_OVERRIDES = {}
# method name → {dotted key: lower bound}: raised to it after the dataset's settings.
METHOD_MINIMUMS = {}
# PT4AL: one pretext-loss batch per cycle (5 cycles on every cpu dataset).
METHOD_OVERRIDES["pt4al"] = {"acquisition_kwargs.num_batches": 5}

# TOD: one model continues across cycles (main_TOD.py builds it once per trial), so COD
# compares the same network at consecutive cycles (Eq. 5). Augmentation stays the dataset's
# (the paper presets use the code's flip + crop 4; digits must not be flipped).
for _name in ("tod", "tod_semi_only", "tod_active_only", "tod_emaod"):
  METHOD_OVERRIDES[_name] = {"train.warm_start": True}
# CrtCl trains with horizontal flips only (§IV-A: no crops); flips follow the dataset (none on
# digits). The paper's γ, E' and critic settings are the objective's defaults.
for _name in ("crtcl", "crtcl_loss_only", "crtcl_select_only"):
  METHOD_OVERRIDES[_name] = {"train.crop_pad": 0}

# LPLgrad family. Every setting is listed so `--set objective_kwargs.X=...` and
# `--set acquisition_kwargs.X=...` can reach it; BUILD_NOTES "LPLgrad family" gives sources.
# Models continue across rounds (LPLgrad Alg. 1 line 1; the public LL4AL/LPLgrad code).
_LOSS_PRED_CPU = {
    "objective_kwargs.margin": 1.0, "objective_kwargs.weight": 1.0,
    # LL4AL detaches after 120 of 200 epochs; the same 60 % of the cpu preset's 40 epochs.
    "objective_kwargs.detach_epoch": 24, "objective_kwargs.hidden": 128,
    "objective_kwargs.pairing": "reverse", "objective_kwargs.ties": "negative",
    "objective_kwargs.module_lr_decay": True, "train.warm_start": True,
}
# Small vmap sub-batches are fastest on CPU (benchmark section "gradnorm": 16 > 32 > 64).
_GRADNORM_CPU = {"acquisition_kwargs.norm": "global", "acquisition_kwargs.grad_batch": 16}
# LPLgrad's public code never steps the loss module's scheduler (main.py).
METHOD_OVERRIDES["lplgrad"] = {**_LOSS_PRED_CPU, **_GRADNORM_CPU,
                               "objective_kwargs.module_lr_decay": False}
METHOD_OVERRIDES["ll4al"] = dict(_LOSS_PRED_CPU)
METHOD_OVERRIDES["ent_gradnorm"] = {**_GRADNORM_CPU, "train.warm_start": True}
METHOD_OVERRIDES["egl"] = {**_GRADNORM_CPU, "acquisition_kwargs.grad_batch": 8,
                           "acquisition_kwargs.squared": True}
METHOD_OVERRIDES["bald"] = {"acquisition_kwargs.num_samples": 20}
METHOD_OVERRIDES["coreset"] = {}


def apply_overrides(config, overrides):
  for key, value in overrides.items():
    node = config
    *path, leaf = key.split(".")
    for p in path:
      node = node[p]
    node[leaf] = value
  return config


def _get(config, key):
  node = config
  for p in key.split("."):
    node = node[p]
  return node


def get_config(method: str, dataset: str, protocol: str = ""):
  """The cpu preset of (method, dataset); with `protocol`, that paper's cpu-scale schedule."""
  from experiments.configs import protocols  # protocols imports nothing of this module
  c = base.for_method(method, dataset, "cpu")
  apply_overrides(c, DATASET_OVERRIDES.get(dataset, {}))
  apply_overrides(c, METHOD_OVERRIDES.get(method, {}))
  if c.model.name != "small_cnn":  # the dataset's model settings are the small CNN's
    c.model.kwargs = type(c.model.kwargs)()
  apply_overrides(c, {k: max(v, _get(c, k)) for k, v in METHOD_MINIMUMS.get(method, {}).items()})
  if method in _FIXMATCH_NAMES:
    if dataset in ("fashion_mnist", "mnist"):
      apply_overrides(c, _FIXMATCH_28)
    c.train.unlabeled_batch_size = FIXMATCH_MU * c.train.batch_size  # μ (Sohn et al. 2020)
  if method in _MT_NAMES:
    c.objective_kwargs.rampup_steps = int(
        MT_RAMPUP_FRACTION * c.train.epochs * c.train.min_steps_per_epoch)
  if protocol:
    apply_overrides(c, protocols.protocol_overrides(protocol, "cpu", dataset))
    c.protocol = protocol
  return c

# CRC and its SSL baselines. Semi-supervised objectives need more steps than the few labeled
# batches of an epoch: every epoch runs at least 10 steps (400 per digits cycle), and the
# initial pool is class-balanced (CRC §4.1). Optimiser: the base Adam 1e-3 for every
# objective at CPU scale (the paper presets use each method's own optimiser).
_SSL_CPU = {"al.class_balanced": True}
_SSL_MIN = {"train.min_steps_per_epoch": 10}  # at least; a dataset may ask for more
_MT_CPU = dict(_SSL_CPU)
# Mean Teacher ramp-up over 40% of a cycle's steps, as 200k of 500k iterations in Oliver et
# al.; set in get_config once the cycle's steps (epochs × min_steps_per_epoch) are known.
MT_RAMPUP_FRACTION = 0.4
# FixMatch: μ = 7 unlabeled images per labeled one (Sohn et al. 2020). EMA decay 0.9: the
# paper's 0.999 averages over ~1,000 of its 2^20 steps; over a 400-step CPU cycle it leaves
# the evaluated model mostly at its initial weights (digits, 50 labels: EMA 0.31 vs student
# 0.92 test accuracy; with 0.9: 0.92).
# The cos(7πk/16K) schedule runs over the cycle's epochs (cosine_steps 0): the paper presets'
# K = 2^20 steps would leave a 400-step CPU cycle at a constant rate.
FIXMATCH_MU = 7
_FIXMATCH_CPU = {**_SSL_CPU, "objective_kwargs.ema_decay": 0.9, "objective_kwargs.cosine_steps": 0,
                 # FixMatch's own cos(7πk/16K) is the schedule; the datasets' cosine would
                 # apply a second decay on top of it.
                 "optim.schedule": "constant"}
_MT_NAMES = ("crc", "random_mt", "entropy_mt", "confidence_mt")
for _name in _MT_NAMES:
  METHOD_OVERRIDES[_name] = _MT_CPU
  METHOD_MINIMUMS[_name] = _SSL_MIN
_FIXMATCH_NAMES = ("crc_fixmatch", "random_fixmatch", "entropy_fixmatch", "confidence_fixmatch")
for _name in _FIXMATCH_NAMES:
  METHOD_OVERRIDES[_name] = _FIXMATCH_CPU
  METHOD_MINIMUMS[_name] = _SSL_MIN
# On 28×28 images a FixMatch step (B labeled + 7B unlabeled images in two views, RandAugment
# running every op under vmap) costs ~35 supervised steps on 2 cores: B = 16 keeps μ = 7 and
# the cycle's 600 steps at half the cost (a cycle: ~750 s → ~380 s per core).
_FIXMATCH_28 = {"train.batch_size": 16}
# ARAL on digits / fashion_mnist: the paper's MNIST networks (Gaussian-noise MLP
# discriminator, 3-layer MLP encoder/generator, d_z = 100) and MNIST learning rates (§4.1);
# 10 labels per class to start, one pass over ~1,200 digits unlabeled images per epoch.
#   python -m experiments.main --method=aral --dataset=digits --workdir=/tmp/aral
#   # expected: 4 cycles, 100 → 160 labels, test accuracy ≈ 0.90–0.94; PNG grids in artifacts/
METHOD_OVERRIDES["aral"] = {
    "model.name": "noisy_mlp", "al.initial": 100, "al.class_balanced": True, "al.budget": 20,
    "al.cycles": 4, "train.epochs": 20, "train.min_steps_per_epoch": 20,
    "train.batch_size": 32, "train.unlabeled_batch_size": 64,
    "train.augment": False,    # the paper augments only ImageNet (§4.2)
    "train.warm_start": True,  # Alg. 1 initialises the models once, before the AL loop
    "optim.lr": 3e-3, "optim.b1": 0.5, "optim.b2": 0.9999,  # D: Adam 3e-3 (§4.1, MNIST)
    "optim.schedule": "constant",  # §4.1 gives fixed learning rates
    # Eqs. 5–12 weights and E/G/S learning rates (§4.1), listed so `--set` can change them.
    "objective_kwargs.latent_dim": 100, "objective_kwargs.lambda_gan": 1.0,
    "objective_kwargs.lambda_cls": 1.0, "objective_kwargs.lambda_trd": 1e-3,
    "objective_kwargs.lambda_adv": 1e-3, "objective_kwargs.beta": 1.0,
    "objective_kwargs.fm_weight": 1.0, "objective_kwargs.encoder_gan": "bigan",
    "objective_kwargs.rf_joint": "mlp",
    "objective_kwargs.eg_lr": 1e-3, "objective_kwargs.sampler_lr": 3e-3,
}
# §4.3's "no encoder + BALD" ablation: ARAL's schedule and networks without E and S; BALD with
# T = 20 draws of the discriminator's Gaussian noise.
_ENCODER_ONLY = ("lambda_trd", "lambda_adv", "beta", "encoder_gan", "sampler_lr", "rf_joint")
METHOD_OVERRIDES["aral_no_encoder"] = {
    **{k: v for k, v in METHOD_OVERRIDES["aral"].items()
       if k.split(".")[-1] not in _ENCODER_ONLY},
    "acquisition_kwargs.num_samples": 20}
# ARAL's classifier (the discriminator's trunk + class head) on labeled data alone: ARAL's
# schedule, network and steps, with its own Adam settings: the best mean validation accuracy
# over digits and fashion_mnist of a 12-setting sweep (`python -m experiments.aral_claim
# --tune`, BUILD_NOTES "ARAL and VAAL"); ARAL's D settings (3e-3, β₂ 0.9999) are tuned for the
# GAN game.
METHOD_OVERRIDES["aral_labels_only"] = {
    **{k: v for k, v in METHOD_OVERRIDES["aral"].items()
       if not k.startswith(("objective_kwargs.", "optim.", "train.unlabeled"))},
    "optim.lr": 3e-4, "optim.b1": 0.5, "optim.b2": 0.999, "optim.schedule": "constant",
}
# VAAL: the same schedule as ARAL so the two compare; a small VAE for 2 CPU cores.
METHOD_OVERRIDES["vaal"] = {
    "al.initial": 100, "al.class_balanced": True, "al.budget": 20, "al.cycles": 4,
    "train.epochs": 20, "train.min_steps_per_epoch": 20, "train.unlabeled_batch_size": 64,
    "objective_kwargs.vae_widths": (16, 32),
}
