"""Defaults shared by every preset; each field says what it controls."""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.method = "random"            # preset pairing (al_jax.methods) or "custom"
  c.objective = "supervised"     # training objective (al_jax.objectives)
  c.acquisition = "random"       # acquisition function (al_jax.acquisition)
  c.dataset = "digits"
  c.data_dir = ""                # TFDS data_dir; "" = TFDS default
  c.preset = "cpu"
  c.protocol = ""                # a paper's schedule every method runs under (configs/protocols)
  c.seed = 0
  c.log_every = 10               # epochs between progress lines
  c.diagnostics = False          # loss-estimation report per cycle (al_jax.diagnostics)

  c.al = ml_collections.ConfigDict()
  c.al.initial = 40              # initial labeled pool size
  c.al.budget = 40               # points labeled per cycle
  c.al.cycles = 5                # training rounds (selection after all but the last)
  c.al.subset = 0                # score a random unlabeled subset of this size (0 = all)
  c.al.class_balanced = False    # class-balanced initial pool (CRC §4)
  c.al.val_size = 0              # held-out labeled validation split (0 = none)
  c.al.pool_copies = 1           # the pool holds each training image this many times
                                 # ("repeated MNIST", Kirsch et al. 2019; CRC Proposition 2)
  c.al.full_labels = False       # reference run: every training point labeled, one cycle

  c.train = ml_collections.ConfigDict()
  c.train.epochs = 40            # epochs per cycle
  c.train.batch_size = 32
  c.train.unlabeled_batch_size = 32  # per step, for objectives that use unlabeled data
  c.train.min_steps_per_epoch = 1    # raise for SSL with few labels
  c.train.warm_start = False     # keep the previous cycle's weights (LL4AL code) vs retrain
  c.train.augment = True         # random crop (+ flip where valid) on labeled batches
  c.train.crop_pad = -1          # random-crop padding in pixels; -1 = the dataset's default
  c.train.flip = "dataset"       # horizontal flips: "dataset" (its default), "on" or "off"
  c.train.early_stopping = False  # pick the best epoch on the validation split
  c.train.early_stopping_patience = 0  # stop after this many epochs without improvement (0: never)
  c.train.initial_trials = 1     # cycle 0: train this many models, keep the median on validation
  c.train.initial_trials_redraw = "pool"  # each trial draws its own initial pool ("pool", CRC
                                 # §4.1) or only another init and batch order ("init")

  c.model = ml_collections.ConfigDict()
  c.model.name = "small_cnn"
  c.model.kwargs = ml_collections.ConfigDict()

  c.optim = ml_collections.ConfigDict()
  c.optim.name = "adam"
  c.optim.lr = 1e-3
  c.optim.momentum = 0.9
  c.optim.nesterov = False
  c.optim.weight_decay = 0.0
  c.optim.b1 = 0.9
  c.optim.b2 = 0.999
  c.optim.grad_clip = 0.0
  c.optim.schedule = "constant"  # constant | step | cosine | cosine_7_16 (FixMatch's), per epoch
  c.optim.milestones = ()        # epochs, for "step"
  c.optim.gamma = 0.1
  c.optim.warmup_epochs = 0

  c.objective_kwargs = ml_collections.ConfigDict()
  c.acquisition_kwargs = ml_collections.ConfigDict()

  c.parallel = ml_collections.ConfigDict()
  c.parallel.devices = 0         # data-parallel devices (0 = all local devices; 1 = off)

  c.eval = ml_collections.ConfigDict()
  c.eval.chunk_size = 256        # fixed chunk for scoring and evaluation
  c.eval.ece_bins = 15           # equal-width ECE bins (CrtCl Eq. 6)

  # Ratios resolved into other settings once, after every override (configs.resolve), so a
  # value that depends on others follows them: 0 = off (the target keeps its own value).
  c.derive = ml_collections.ConfigDict()
  c.derive.unlabeled_ratio = 0.0   # μ: train.unlabeled_batch_size = μ × train.batch_size
  c.derive.rampup_fraction = 0.0   # objective_kwargs.rampup_steps = f × epochs × min_steps_per_epoch
  c.derive.detach_fraction = 0.0   # objective_kwargs.detach_epoch = round(f × train.epochs)
  c.derive.group_fraction = 0.0    # acquisition_kwargs.group_size = round(f × al.budget)
  c.derive.cosine_fraction = 0.0   # objective_kwargs.cosine_steps = f × epochs × min_steps_per_epoch
  return c
