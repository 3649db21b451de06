"""Paper presets: each paper's settings, meant for GPUs.

`PAPER_PRESETS[(method, dataset)]` overrides the shared CIFAR-style baseline
below; each method registers its paper's tables here. Each entry's
comment names the paper table it reproduces.

    python -m experiments.main --method=entropy --dataset=cifar10 --preset=paper
"""

from al_jax import ALError
from experiments.configs import protocols

# The common benchmark setting of LL4AL (Yoo & Kweon 2019 §4.1), reused by TOD and
# LPLgrad for CIFAR-10: ResNet-18, SGD lr 0.1 momentum 0.9 wd 5e-4, 200 epochs,
# lr ×0.1 at epoch 160, batch 128, 1,000 initial + 1,000 per cycle, 10 cycles,
# random subset of 10,000 unlabeled points scored per cycle.
CIFAR_BASELINE = {
    "model.name": "resnet18", "optim.name": "sgd", "optim.lr": 0.1, "optim.momentum": 0.9,
    "optim.weight_decay": 5e-4, "optim.schedule": "step", "optim.milestones": (160,),
    "train.epochs": 200, "train.batch_size": 128, "al.initial": 1000, "al.budget": 1000,
    "al.cycles": 10, "al.subset": 10000, "eval.chunk_size": 128, "log_every": 20,
}

DATASET_BASE = {"cifar10": CIFAR_BASELINE, "cifar100": CIFAR_BASELINE,
                "svhn": CIFAR_BASELINE}

# (method, dataset) → overrides, one entry per paper table.
PAPER_PRESETS = {}

# TOD (Huang et al. 2021): its protocol's schedule (`protocols.TOD_DATA`: Table 5 + the public
# code's start/budget/subset, flip + crop 4 on every dataset, the model continues across cycles)
# plus the method's own settings: α = 0.999, λ = 0.05, unlabeled batch = BATCH (128).
_TOD = {"train.unlabeled_batch_size": 128, "objective_kwargs.lam": 0.05,
        "objective_kwargs.ema_decay": 0.999}
# Fig. 7 (tod), Table 1 (Base+Semi, Base+Active), §5.4 Fig. 9 (EMAOD).
for _m in ("tod", "tod_semi_only", "tod_active_only", "tod_emaod"):
  for _d in protocols.TOD_DATA:
    _kw = {} if _m == "tod_active_only" else _TOD  # Base+Active trains with CE only
    PAPER_PRESETS[(_m, _d)] = {**protocols.protocol_overrides("tod", "paper", _d), **_kw}

# CrtCl §V.A (Fig. 2; ablations Figs. 4–5 on CIFAR-10): its protocol's schedule (1200/200
# CIFAR, 500/500 SVHN, 7 cycles, flip only) plus critic AdamW 1e-3, E' = 130 of 200,
# γ = 0.04 (CIFAR) / 0.02 (SVHN), unlabeled batch 128 (not stated; the labeled batch size).
_GAMMA = {"cifar10": 0.04, "cifar100": 0.04, "svhn": 0.02}
for _d in protocols.CRTCL_DATA:
  _sched = protocols.protocol_overrides("crtcl", "paper", _d)
  _crit = {"objective_kwargs.stop_fraction": 130 / 200, "objective_kwargs.critic_lr": 1e-3,
           "objective_kwargs.gamma": _GAMMA[_d], "train.unlabeled_batch_size": 128}
  PAPER_PRESETS[("crtcl", _d)] = {**_sched, **_crit}
  # PT4AL as CrtCl's baseline (Fig. 2): CrtCl's schedule; pretext settings of the public
  # code (rotation.py: ResNet-18, SGD 0.1 / 0.9 / 5e-4, batch 256; 15 epochs, the authors'
  # corrected rotation.py (johnsk95/PT4AL 79b8279), so its ×0.1 at 30/60/90 is never
  # reached); one batch per cycle; PT4AL scores its whole batch (no random subset).
  PAPER_PRESETS[("pt4al", _d)] = {
      **_sched, "al.subset": 0, "acquisition_kwargs.num_batches": 7,
      "acquisition_kwargs.model": "resnet18", "acquisition_kwargs.model_kwargs": {},
      "acquisition_kwargs.epochs": 15, "acquisition_kwargs.batch_size": 256,
      "acquisition_kwargs.optim": {"name": "sgd", "lr": 0.1, "momentum": 0.9,
                                   "weight_decay": 5e-4, "schedule": "step",
                                   "milestones": (30, 60, 90), "gamma": 0.1}}
PAPER_PRESETS[("crtcl_loss_only", "cifar10")] = dict(PAPER_PRESETS[("crtcl", "cifar10")])
PAPER_PRESETS[("crtcl_select_only", "cifar10")] = {
    k: v for k, v in PAPER_PRESETS[("crtcl", "cifar10")].items()
    if k not in ("objective_kwargs.gamma", "objective_kwargs.stop_fraction",
                 "train.unlabeled_batch_size")}
# --- LPLgrad family ---------------------------------------------------------------------
# LPLgrad (Gul et al.) §IV-A and Table II (high A): its protocol's schedule
# (`protocols.LPLGRAD_TABLE2_HIGH`; every method continues its model across rounds, Alg. 1
# line 1) plus each method's own settings. The loss module's (margin 1, weight 1, detach after
# epoch 120, 128-unit blocks) are LL4AL's (Yoo & Kweon 2019 §4.1), which LPLgrad follows
# ("settings ... recommended by the baseline studies"). LPLgrad's public code never steps the
# module's learning-rate scheduler (main.py steps only `schedulers['backbone']`); LL4AL's does.
_LOSS_PRED_PAPER = {
    "objective_kwargs.margin": 1.0, "objective_kwargs.weight": 1.0,
    "derive.detach_fraction": 120 / 200, "objective_kwargs.hidden": 128,
    "objective_kwargs.pairing": "reverse", "objective_kwargs.ties": "negative",
    "objective_kwargs.module_lr_decay": True,
}
# Eq. 8's Frobenius norm; sub-batches of 32 per-sample ResNet-18 gradients (≈1.4 GB).
_GRADNORM_PAPER = {"acquisition_kwargs.norm": "global", "acquisition_kwargs.grad_batch": 32}
LPLGRAD_TABLE2_LOW = protocols.LPLGRAD_TABLE2_LOW
for _ds in protocols.LPLGRAD_TABLE2_HIGH:
  _table = protocols.protocol_overrides("lplgrad", "paper", _ds)
  PAPER_PRESETS[("lplgrad", _ds)] = {**_table, **_LOSS_PRED_PAPER, **_GRADNORM_PAPER,
                                     "objective_kwargs.module_lr_decay": False}  # Table III
  PAPER_PRESETS[("ll4al", _ds)] = {**_table, **_LOSS_PRED_PAPER}  # LPLgrad Table III
  PAPER_PRESETS[("ent_gradnorm", _ds)] = {**_table, **_GRADNORM_PAPER}  # LPLgrad Table III
  PAPER_PRESETS[("coreset", _ds)] = dict(_table)  # LPLgrad Table III



def baseline_methods():
  """Methods that run on any paper dataset's shared baseline (DATASET_BASE) without a table
  of their own: the supervised objective with an acquisition that needs no side model and no
  previous model (random, entropy, margin, core-set, BADGE, ...)."""
  from al_jax.acquisition import ACQUISITIONS
  from al_jax.methods import METHODS
  out = []
  for name, m in sorted(METHODS.items()):
    acq = ACQUISITIONS.get(m.acquisition)
    # The shared baseline is ResNet-18 without dropout: no MC-dropout acquisition on it.
    if (m.objective == "supervised" and not m.variant and not acq.requires
        and not acq.needs_previous and not acq.stochastic_forward):
      out.append(name)
  return tuple(out)


def model_layer(model: str, dataset: str) -> dict:
  del model, dataset  # each paper table names its model's settings
  return {}


def layers(method: str, objective: str, acquisition: str, dataset: str, protocol: str):
  """The paper preset's layers: the shared baseline of the dataset, then the paper table of
  (method, dataset), then the protocol's schedule (without the keys the acquisition owns)."""
  del objective
  key = (method, dataset)
  if not protocol and key not in PAPER_PRESETS and not (
      method in baseline_methods() and dataset in DATASET_BASE):
    have = sorted({f"{a}/{b}" for a, b in PAPER_PRESETS} |
                  {f"{a}/{b}" for a in baseline_methods() for b in DATASET_BASE})
    raise ALError(f"no paper preset for method {method!r} on dataset {dataset!r}; "
                  f"available: {', '.join(have)} (or --protocol=NAME: "
                  f"{', '.join(sorted(protocols.PROTOCOLS))})")
  out = [(f"dataset ({dataset})", dict(DATASET_BASE.get(dataset, {}))),
         (f"method ({method})", dict(PAPER_PRESETS.get(key, {})))]
  if protocol:
    sched = protocols.protocol_overrides(protocol, "paper", dataset)
    out.append((f"protocol ({protocol})", {k: v for k, v in sched.items()
                                           if k not in PROTOCOL_EXEMPT.get(acquisition, ())}))
  return out


# Schedule keys an acquisition owns under any protocol: PT4AL selects from its whole
# pretext-loss batch (the public code scores no random subset).
PROTOCOL_EXEMPT = {"pt4al": ("al.subset",)}

# --- CRC (Kong et al., "Relieving the Plateau") ---------------------------------------
# §4.1: Oliver et al. 2018's SSL setting (WRN-28-2), class-balanced initial pool of Q0,
# retraining from scratch each cycle, early stopping on a held-out labeled validation split
# (perrying/realistic-ssl-evaluation-pytorch `build_dataset.py`: 7,326 SVHN / 5,000 CIFAR
# validation images), "trained until accuracy did not improve for 50/100/∞ epochs or
# 350/600/512 epochs" (CIFAR-10/100/SVHN). An epoch is 1,024 steps (kekmodel's eval_step).
_CRC_COMMON = {
    "model.name": "wrn28_2", "al.class_balanced": True, "train.early_stopping": True,
    "train.min_steps_per_epoch": 1024, "al.subset": 0, "eval.chunk_size": 256,
    "log_every": 10,
    # §4.1: "used the model that attained median performance across 5 and 3 trials for
    # experiments in sections 4.3.1 and 4.3.2": Tables 4–6 are §4.3.2 (judged here on the
    # validation split).
    "train.initial_trials": 3,
}
# Table 4: Mean Teacher on SVHN, Q0 = 120, Q = 20, G = 20: 120 → 200 labels (5 cycles).
# perrying `config.py`: Adam lr 4e-4, ×0.2 at iteration 400k of 500k (epoch 390 of 512),
# batch 100 split 50 labeled + 50 unlabeled, EMA 0.95, consistency 8, ramp-up 200k steps.
_CRC_SVHN_MT = {
    **_CRC_COMMON, "al.val_size": 7326, "al.initial": 120, "al.budget": 20, "al.cycles": 5,
    "train.epochs": 512, "train.early_stopping_patience": 0, "train.batch_size": 50,
    "train.unlabeled_batch_size": 50, "optim.name": "adam", "optim.lr": 4e-4,
    "optim.weight_decay": 0.0,
    "optim.schedule": "step", "optim.milestones": (390,), "optim.gamma": 0.2,
    "objective_kwargs.ema_decay": 0.95, "objective_kwargs.consistency": 8.0,
    "objective_kwargs.rampup_steps": 200000,
}
# FixMatch (kekmodel defaults): SGD nesterov 0.9, lr 0.03 × cos(7πk/16K) per step, batch 64,
# μ = 7, τ = 0.95, λ_u = 1, EMA 0.999; no weight decay: the early version's only decay is
# `msd[k] = msd[k] * (1. - self.wd)` in ModelEMA.update (train.py da6d046 … 8ca226e), which
# rebinds an entry of a fresh `state_dict()` and leaves the parameters as they are (the
# optimiser is `SGD(model.parameters(), lr, momentum, nesterov)`, no weight_decay); decay
# reached the optimiser only in c99ccba (2020-11-05), the later version. K: CRC
# footnote 2 names the early kekmodel version (train.py up to 8ca226e: total_steps = epochs ×
# iteration, 1,024 steps an epoch), so K = the cycle's epochs × steps per epoch
# (derive.cosine_fraction = 1; a 350-epoch cycle ends at 0.195 of the base rate); the later
# version (e5422ac, --total-steps 2^20, ending at 0.89) is `--set
# objective_kwargs.cosine_steps=1048576 --set derive.cosine_fraction=0`.
_FIXMATCH = {
    "train.batch_size": 64, "train.unlabeled_batch_size": 7 * 64, "optim.name": "sgd",
    "optim.lr": 0.03, "optim.momentum": 0.9, "optim.nesterov": True,
    "optim.schedule": "constant", "objective_kwargs.threshold": 0.95,
    "objective_kwargs.lambda_u": 1.0, "objective_kwargs.temperature": 1.0,
    "objective_kwargs.ema_decay": 0.999, "objective_kwargs.cosine_7_16": True,
    # CRC footnote 2: the early kekmodel version (EMA of BN statistics) for §4.3.2's tables.
    "objective_kwargs.ema_batch_stats": True,
    "derive.cosine_fraction": 1.0,
}
# Table 6: FixMatch on CIFAR-10, Q = 50 (Q0 = 50, G = Q/10 = 5): 50 → 300 labels (6 cycles);
# for the Q = 100 columns use --initial=100 --budget=100 --set acquisition_kwargs.group_size=10.
_CRC_C10_FM = {
    **_CRC_COMMON, **_FIXMATCH, "al.val_size": 5000, "al.initial": 50, "al.budget": 50,
    "al.cycles": 6, "train.epochs": 350, "train.early_stopping_patience": 50,
    "optim.weight_decay": 0.0,
}
# Table 5: FixMatch on CIFAR-100, Q0 = 200, Q = 50, G = 5: 200 → 450 labels (6 cycles).
_CRC_C100_FM = {
    **_CRC_COMMON, **_FIXMATCH, "al.val_size": 5000, "al.initial": 200, "al.budget": 50,
    "al.cycles": 6, "train.epochs": 600, "train.early_stopping_patience": 100,
    "optim.weight_decay": 0.0,
}
for _acq_method, _g in (("crc", 20), ("random_mt", 0), ("entropy_mt", 0), ("confidence_mt", 0)):
  PAPER_PRESETS[(_acq_method, "svhn")] = (
      {**_CRC_SVHN_MT, "acquisition_kwargs.group_size": _g} if _g else _CRC_SVHN_MT)
for _acq_method in ("crc_fixmatch", "random_fixmatch", "entropy_fixmatch", "confidence_fixmatch"):
  _crc = {"acquisition_kwargs.group_size": 5} if _acq_method == "crc_fixmatch" else {}
  PAPER_PRESETS[(_acq_method, "cifar10")] = {**_CRC_C10_FM, **_crc}
  PAPER_PRESETS[(_acq_method, "cifar100")] = {**_CRC_C100_FM, **_crc}
# --- ARAL (Mottaghi & Yeung, §4.1) and its VAAL baseline -----------------------------------
#   python -m experiments.main --method=aral --dataset=cifar10 --preset=paper
# Pool schedules (§4.1): MNIST 10 initial labels +10 per cycle, SVHN 100/+100, CIFAR-10
# 500/+500, 10 iterations; random initial pool (public ARAL main.py). One epoch is one pass over
# the training set in steps (public trainers' batch_per_epoch), 100 epochs (public main.py
# --max_epochs). Alg. 1 initialises the models once: warm start across cycles (public code
# `inherit`). No augmentation (§4.1 names none for these datasets).
_ARAL = {"train.augment": False, "train.warm_start": True, "al.cycles": 10, "al.subset": 0,
         "al.class_balanced": False, "train.epochs": 100, "optim.name": "adam",
         "optim.schedule": "constant", "optim.milestones": (), "optim.weight_decay": 0.0,
         "log_every": 5,
         # §4.1: λ_gan = λ_cls = 1, λ_trd = λ_adv = 0.001, β = 1, d_z = 100, feature matching
         # (weight 1: public mnist_trainer.py).
         "objective_kwargs.lambda_gan": 1.0, "objective_kwargs.lambda_cls": 1.0,
         "objective_kwargs.lambda_trd": 1e-3, "objective_kwargs.lambda_adv": 1e-3,
         "objective_kwargs.beta": 1.0, "objective_kwargs.latent_dim": 100,
         "objective_kwargs.fm_weight": 1.0}
PAPER_PRESETS[("aral", "mnist")] = {
    **_ARAL, "al.initial": 10, "al.budget": 10,
    # §4.1 MNIST: Gaussian-noise 5-layer MLP D, 3-layer MLP E/G, Adam 1e-3 (E, G), 3e-3 (D, S);
    # betas and batch 100 from the public config.py / mnist_trainer.py.
    "model.name": "noisy_mlp", "model.kwargs.noise": 0.5,
    "optim.lr": 3e-3, "optim.b1": 0.5, "optim.b2": 0.9999,
    "train.batch_size": 100, "train.unlabeled_batch_size": 100, "train.min_steps_per_epoch": 600,
    "objective_kwargs.arch": "mlp", "objective_kwargs.eg_lr": 1e-3,
    "objective_kwargs.sampler_lr": 3e-3, "objective_kwargs.eg_b2": 0.9999,
}
_ARAL_32 = {
    **_ARAL,
    # §4.1 SVHN/CIFAR-10: CNN E/G with 3 hidden layers, D of 3 conv blocks × 3 layers with
    # dropout 0.5, Adam 3e-4 (E, G) and 6e-4 (D, S), d_z = 100; betas from cifar_trainer.py.
    "model.name": "gan_cnn", "model.kwargs.dropout_rate": 0.5,
    "optim.lr": 6e-4, "optim.b1": 0.5, "optim.b2": 0.999,
    "objective_kwargs.arch": "conv", "objective_kwargs.eg_lr": 3e-4,
    "objective_kwargs.eg_b2": 0.999, "objective_kwargs.sampler_lr": 6e-4,
}
PAPER_PRESETS[("aral", "svhn")] = {
    **_ARAL_32, "al.initial": 100, "al.budget": 100, "model.kwargs.widths": (64, 128),
    "train.batch_size": 64, "train.unlabeled_batch_size": 64,   # public svhn_config
    "train.min_steps_per_epoch": 1145,                          # 73,257 / 64
}
PAPER_PRESETS[("aral", "cifar10")] = {
    **_ARAL_32, "al.initial": 500, "al.budget": 500, "model.kwargs.widths": (96, 192),
    "train.batch_size": 100, "train.unlabeled_batch_size": 100,  # public cifar_config
    "train.min_steps_per_epoch": 500,                            # 50,000 / 100
}
# VAAL (Sinha et al. 2019) official defaults (sinhasam/vaal): β-VAE latent 32, β = 1, λ = 1,
# VAE convs 128-256-512-1024, Adam 5e-4 for VAE and sampler, 1 task : 2 VAE : 1 sampler steps,
# batch 128, 100 epochs of num_images / batch steps; task model SGD 0.01, momentum 0.9,
# weight decay 5e-4, lr ÷10 at each quarter. The official VGG16-BN is not in al_jax.models:
# ResNet-18 for 32×32 images, the small CNN for MNIST. ARAL's pool schedule per dataset.
_VAAL_TASK = {
    "optim.name": "sgd", "optim.lr": 0.01, "optim.momentum": 0.9, "optim.weight_decay": 5e-4,
    "optim.schedule": "step", "optim.milestones": (25, 50, 75), "optim.gamma": 0.1,
    "train.epochs": 100, "train.batch_size": 128, "train.augment": False,
    "al.cycles": 10, "al.subset": 0, "al.class_balanced": False, "log_every": 5,
}
_VAAL = {**_VAAL_TASK, "train.unlabeled_batch_size": 128,
         "objective_kwargs.vae_widths": (128, 256, 512, 1024), "objective_kwargs.latent_dim": 32,
         "objective_kwargs.beta": 1.0, "objective_kwargs.adversary_param": 1.0,
         "objective_kwargs.vae_lr": 5e-4, "objective_kwargs.sampler_lr": 5e-4,
         "objective_kwargs.num_vae_steps": 2, "objective_kwargs.num_adv_steps": 1,
         "objective_kwargs.kl_reduction": "sum"}
PAPER_PRESETS[("vaal", "mnist")] = {**_VAAL, "model.name": "small_cnn", "al.initial": 10,
                                    "al.budget": 10, "train.min_steps_per_epoch": 469}
PAPER_PRESETS[("vaal", "svhn")] = {**_VAAL, "model.name": "resnet18", "al.initial": 100,
                                   "al.budget": 100, "train.min_steps_per_epoch": 573}
# CIFAR-10: the official training transform flips (custom_datasets.py `cifar10_transformer()`
# at 67263f3: RandomHorizontalFlip + ToTensor + Normalize); no crops.
PAPER_PRESETS[("vaal", "cifar10")] = {**_VAAL, "model.name": "resnet18", "al.initial": 500,
                                      "al.budget": 500, "train.min_steps_per_epoch": 391,
                                      "train.augment": True, "train.flip": "on",
                                      "train.crop_pad": 0}
# §4.3 ablation "no encoder" (Fig. 5, CIFAR-10): G and D only, BALD as the sampling strategy
# (T = 20 draws of D's dropout), ARAL's CIFAR-10 preset otherwise.
# §4.3 ablation "no active learning" (Fig. 5, CIFAR-10): "we remove the sampler and adversarial
# loss for the encoder and use random sampling"; ARAL's CIFAR-10 preset otherwise.
PAPER_PRESETS[("aral_no_al", "cifar10")] = dict(PAPER_PRESETS[("aral", "cifar10")])
PAPER_PRESETS[("aral_no_encoder", "cifar10")] = {
    **{k: v for k, v in PAPER_PRESETS[("aral", "cifar10")].items()
       if k not in ("objective_kwargs.sampler_lr",)},
    "acquisition_kwargs.num_samples": 20}
# §4 BALD baseline (Fig. 3) on ARAL's discriminator classifiers (noisy_mlp / gan_cnn, whose
# Gaussian noise / dropout BALD samples), trained on labeled data alone with ARAL's pool schedule
# and D's optimiser (the paper does not say how its baselines were trained).
for _d in ("mnist", "svhn", "cifar10"):
  PAPER_PRESETS[("bald", _d)] = {
      k: v for k, v in PAPER_PRESETS[("aral", _d)].items()
      if not k.startswith(("objective_kwargs.", "train.unlabeled"))}
  PAPER_PRESETS[("bald", _d)]["acquisition_kwargs.num_samples"] = 20
# ARAL's other MNIST baselines (§4: max-entropy, random) with VAAL's task-model recipe. On SVHN
# and CIFAR-10 they keep the shared baseline above; ARAL's schedule there is
# `--initial=100 --budget=100` (SVHN) or `--initial=500 --budget=500` (CIFAR-10).
for _m in ("entropy", "random"):
  PAPER_PRESETS[(_m, "mnist")] = {**_VAAL_TASK, "model.name": "small_cnn", "al.initial": 10,
                                  "al.budget": 10, "train.min_steps_per_epoch": 469}
