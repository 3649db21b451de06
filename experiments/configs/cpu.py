"""CPU-scale preset: one full AL run of any method on `digits` in a few minutes on 2 cores.

    python -m experiments.main --method=entropy --dataset=digits --workdir=/tmp/entropy
    # expected: 5 cycles, 40 → 200 labels, last-cycle test accuracy ≈ 0.97 (0.968–0.974 over seeds 0–2)

Settings are keyed by the component they configure (experiments/configs/__init__.py gives the
resolution order): `DATASETS`, `model_layer`, `OBJECTIVES`, `ACQUISITIONS`, and `METHODS` for
the few settings of a named pairing that belong to neither half. Each entry overrides only
what differs from base.py.
"""

from experiments.configs import AtLeast
from experiments.configs import apply_overrides  # noqa: F401  (tests and harnesses use it)

# Models that learn: every cycle trains a fixed number of steps (epochs × min_steps_per_epoch,
# since a few hundred labels give fewer natural steps) with a cosine learning rate. Measured
# against the linear-probe floor (experiments/floors.py), 3 seeds: BUILD_NOTES "CPU presets".
_LEARN = {"optim.schedule": "cosine"}
# 28×28 datasets start at 200 labels: at 100 the CNN beats the linear probe on the same labels
# by only 1.0 point (0.721 vs 0.711, fashion_mnist, 3 seeds); from 200 on by ≥ 3.
_MNIST_CPU = {**_LEARN, "al.initial": 200, "al.budget": 100, "al.subset": 5000,
              "train.epochs": 20, "train.min_steps_per_epoch": 30}
_28x28 = ("fashion_mnist", "mnist")
DATASETS = {
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


def model_layer(model: str, dataset: str) -> dict:
  """The small CNN flattens its last feature map on digits and 28×28 images (global average
  pooling lost to logistic regression on the raw pixels with few labels); wider on 28×28."""
  if model != "small_cnn":
    return {}
  if dataset == "digits":
    return {"model.kwargs.flatten": True}
  if dataset in _28x28:
    return {"model.kwargs.flatten": True, "model.kwargs.widths": (32, 64, 128)}
  return {}


# --- objectives -----------------------------------------------------------------------------
OBJECTIVES = {}
# TOD: one model continues across cycles (main_TOD.py builds it once per trial), so the EMA
# consistency term trains one network throughout. Augmentation stays the dataset's (the paper
# presets use the code's flip + crop 4; digits must not be flipped).
OBJECTIVES["tod_ema"] = {"train.warm_start": True}
# CrtCl trains with horizontal flips only (§IV-A: no crops); flips follow the dataset (none on
# digits). The paper's γ, E' and critic settings are the objective's defaults.
OBJECTIVES["critic"] = {"train.crop_pad": 0}
OBJECTIVES["critic_no_gen"] = {"train.crop_pad": 0}
# The loss-prediction module (LL4AL, LPLgrad). Every setting is listed so `--set
# objective_kwargs.X=...` can reach it; BUILD_NOTES "LPLgrad family" gives sources. LL4AL
# detaches the module's input features after 120 of 200 epochs: the same 60 % of any cycle's
# epochs (derive.detach_fraction). Models continue across rounds (LPLgrad Alg. 1 line 1; the
# public LL4AL/LPLgrad code).
OBJECTIVES["loss_pred"] = {
    "objective_kwargs.margin": 1.0, "objective_kwargs.weight": 1.0,
    "derive.detach_fraction": 120 / 200, "objective_kwargs.hidden": 128,
    "objective_kwargs.pairing": "reverse", "objective_kwargs.ties": "negative",
    "objective_kwargs.module_lr_decay": True, "train.warm_start": True,
}
# Semi-supervised objectives (CRC and its SSL baselines) need more steps than the few labeled
# batches of an epoch: every epoch runs at least 10 steps (400 per digits cycle), and the
# initial pool is class-balanced (CRC §4.1). Optimiser: the base Adam 1e-3 at CPU scale (the
# paper presets use each method's own optimiser).
_SSL = {"al.class_balanced": True, "train.min_steps_per_epoch": AtLeast(10)}
# Mean Teacher ramps its consistency weight up over 40% of a cycle's steps, as 200k of 500k
# iterations in Oliver et al.
OBJECTIVES["mean_teacher"] = {**_SSL, "derive.rampup_fraction": 0.4}
# FixMatch: μ = 7 unlabeled images per labeled one (Sohn et al. 2020). EMA decay 0.9: the
# paper's 0.999 averages over ~1,000 of its 2^20 steps; over a 400-step CPU cycle it leaves
# the evaluated model mostly at its initial weights (digits, 50 labels: EMA 0.31 vs student
# 0.92 test accuracy; with 0.9: 0.92). The cos(7πk/16K) schedule runs over the cycle's epochs
# (cosine_steps 0): the paper presets' K = 2^20 steps would leave a 400-step CPU cycle at a
# constant rate; it is the schedule, so the datasets' cosine (a second decay) is replaced.
FIXMATCH_MU = 7
OBJECTIVES["fixmatch"] = {**_SSL, "derive.unlabeled_ratio": float(FIXMATCH_MU),
                          "objective_kwargs.ema_decay": 0.9, "objective_kwargs.cosine_steps": 0,
                          "optim.schedule": "constant"}
# On 28×28 images a FixMatch step (B labeled + 7B unlabeled images in two views; the network's
# forward/backward over them is ~95% of it, RandAugment ~5%) costs ~35 supervised steps on 2
# cores: B = 16 keeps μ = 7 and the cycle's 600 steps at half the cost (~750 s → ~380 s).
_FIXMATCH_28 = {"train.batch_size": 16}
# ARAL on digits / fashion_mnist: the paper's MNIST networks (Gaussian-noise MLP
# discriminator, 3-layer MLP encoder/generator, d_z = 100) and MNIST learning rates (§4.1);
# 10 labels per class to start, one pass over ~1,200 digits unlabeled images per epoch.
#   python -m experiments.main --method=aral --dataset=digits --workdir=/tmp/aral
#   # expected: 4 cycles, 100 → 160 labels, test accuracy ≈ 0.90–0.94; PNG grids in artifacts/
_ARAL_SCHEDULE = {
    "model.name": "noisy_mlp", "al.initial": 100, "al.class_balanced": True, "al.budget": 20,
    "al.cycles": 4, "train.epochs": 20, "train.min_steps_per_epoch": 20,
    "train.batch_size": 32, "train.augment": False,  # the paper augments only ImageNet (§4.2)
    "train.warm_start": True,  # Alg. 1 initialises the models once, before the AL loop
}
OBJECTIVES["aral"] = {
    **_ARAL_SCHEDULE, "train.unlabeled_batch_size": 64,
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
# §4.3's "no encoder" ablation: ARAL's schedule and networks without E and S.
_ENCODER_ONLY = ("lambda_trd", "lambda_adv", "beta", "encoder_gan", "sampler_lr", "rf_joint")
OBJECTIVES["aral_no_encoder"] = {k: v for k, v in OBJECTIVES["aral"].items()
                                 if k.split(".")[-1] not in _ENCODER_ONLY}
# §4.3's "no active learning" ablation: ARAL without the sampler and the encoder's adversarial
# term (the objective drops them), on ARAL's schedule and networks.
OBJECTIVES["aral_no_al"] = dict(OBJECTIVES["aral"])
# VAAL: the same schedule as ARAL so the two compare; a small VAE for 2 CPU cores.
OBJECTIVES["vaal"] = {
    "al.initial": 100, "al.class_balanced": True, "al.budget": 20, "al.cycles": 4,
    "train.epochs": 20, "train.min_steps_per_epoch": 20, "train.unlabeled_batch_size": 64,
    "objective_kwargs.vae_widths": (16, 32),
}

# --- acquisition functions --------------------------------------------------------------------
ACQUISITIONS = {}
# PT4AL: one pretext-loss batch per cycle (5 cycles on every cpu dataset); it scores its whole
# batch (no subset R: the 28×28 datasets' R = 5,000 would have cut each batch to a random ~8%)
# and keeps training one network across cycles (johnsk95/PT4AL main.py at 458883de builds the
# net once and reloads the previous cycle's checkpoint), as the paper preset does.
ACQUISITIONS["pt4al"] = {"acquisition_kwargs.num_batches": 5, "al.subset": 0,
                         "train.warm_start": True}
# COD compares one model at consecutive cycles (TOD Eq. 5): the model continues.
ACQUISITIONS["cod"] = {"train.warm_start": True}
# Per-sample gradient norms: Eq. 8's Frobenius norm over all layers; small vmap sub-batches
# are fastest on CPU (benchmark section "gradnorm": 16 > 32 > 64).
ACQUISITIONS["entropy_gradnorm"] = {"acquisition_kwargs.norm": "global",
                                    "acquisition_kwargs.grad_batch": 16}
ACQUISITIONS["egl"] = {"acquisition_kwargs.norm": "global", "acquisition_kwargs.grad_batch": 8,
                       "acquisition_kwargs.squared": True}
# BALD: T = 20 stochastic forward passes (Gal et al. 2017).
ACQUISITIONS["bald"] = {"acquisition_kwargs.num_samples": 20}

# --- named pairings: what belongs to neither half ---------------------------------------------
METHODS = {}
# LPLgrad's public code never steps the loss module's scheduler (main.py).
METHODS["lplgrad"] = {"objective_kwargs.module_lr_decay": False}
# Ent-GradNorm as LPLgrad's baseline: its model continues across rounds like LPLgrad's.
METHODS["ent_gradnorm"] = {"train.warm_start": True}
# ARAL's classifier (the discriminator's trunk + class head) on labeled data alone: ARAL's
# schedule, network and steps, with its own Adam settings: the best mean validation accuracy
# over digits and fashion_mnist of a 12-setting sweep (`python -m experiments.aral_claim
# --tune`, BUILD_NOTES "ARAL and VAAL"); ARAL's D settings (3e-3, β₂ 0.9999) are tuned for the
# GAN game. A named variant: its pairing spelled out (supervised × random) is `random`.
METHODS["aral_labels_only"] = {
    **_ARAL_SCHEDULE,
    "optim.lr": 3e-4, "optim.b1": 0.5, "optim.b2": 0.999, "optim.schedule": "constant",
}


def layers(method: str, objective: str, acquisition: str, dataset: str, protocol: str):
  """The cpu preset's layers for a resolved pairing, in resolution order (no model layer:
  `model_layer` is inserted for the model finally run)."""
  from experiments.configs import protocols
  obj = dict(OBJECTIVES.get(objective, {}))
  if objective == "fixmatch" and dataset in _28x28:
    obj.update(_FIXMATCH_28)
  out = [(f"dataset ({dataset})", dict(DATASETS.get(dataset, {}))),
         (f"objective ({objective})", obj),
         (f"acquisition ({acquisition})", dict(ACQUISITIONS.get(acquisition, {}))),
         (f"method ({method})", dict(METHODS.get(method, {})))]
  if protocol:
    out.append((f"protocol ({protocol})", protocols.protocol_overrides(protocol, "cpu",
                                                                      dataset)))
  return out
