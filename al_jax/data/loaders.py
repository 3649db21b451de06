"""Dataset loaders, registered by name in `DATASETS`.

Every loader has the signature `load(data_dir=None, seed=0) -> Dataset` and
returns whole splits as host numpy arrays (uint8 images [N, H, W, C], int32
labels). Splits are fixed: `seed` does not change them, so every run of a
benchmark shares the same pool and test set.

- `digits`, `synthetic`: embedded, offline, small; the defaults for CPU runs and
  tests.
- `fashion_mnist`: TFDS when it is prepared in the given `data_dir`, else
  Debian's `dataset-fashion-mnist` IDX files when installed, else TFDS.
- `mnist`, `svhn`, `cifar10`, `cifar100`: TFDS, read without TensorFlow through
  `builder.as_data_source` (ArrayRecord files, PNGs decoded by PIL). A dataset
  that is not prepared in `data_dir` fails at once with a one-line `ALError`
  naming the command that prepares it (`python -m experiments.prepare_data`);
  nothing is downloaded from here.
"""

import contextlib
import gzip
import os

import numpy as np

from al_jax import ALError
from al_jax.data.datasets import DATASETS, Dataset

# Where Debian's `dataset-fashion-mnist` package installs the original gzip IDX
# files (checked with `dpkg -L dataset-fashion-mnist`, bookworm
# 0.0~git20200523.55506a9-1). Module level so tests can point it elsewhere.
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}

# Registry name → TFDS builder name (experiments/prepare_data.py prepares these).
TFDS_NAMES = {"fashion_mnist": "fashion_mnist", "mnist": "mnist", "svhn": "svhn_cropped",
              "cifar10": "cifar10", "cifar100": "cifar100"}

# `digits`: scikit-learn's 1,797 images; 500 held out, split with a fixed seed
# so the test set never depends on the run's seed.
DIGITS_NUM_TEST = 500
DIGITS_SPLIT_SEED = 0

# `synthetic`: sizes for tests; small enough to train on CPU in seconds.
SYNTHETIC_NUM_TRAIN = 600
SYNTHETIC_NUM_TEST = 200
SYNTHETIC_NUM_CLASSES = 10
SYNTHETIC_IMAGE_SIZE = 16
SYNTHETIC_NOISE_STD = 64.0  # in pixel units; templates are uniform in [0, 255]
SYNTHETIC_SEED = 0

# IDX type codes (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT");
# multi-byte values are big-endian.
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str) -> np.ndarray:
  """Reads an IDX file (the MNIST / Fashion-MNIST format), gzipped or not.

  Args:
    path: file path; gzip is detected from the file's magic bytes, not its name.

  Returns:
    The array, in native byte order, with the shape stored in the header.

  Raises:
    ALError: if the file is not a well-formed IDX file.
  """
  with open(path, "rb") as f:
    raw = f.read()
  if raw[:2] == b"\x1f\x8b":
    raw = gzip.decompress(raw)
  if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _IDX_DTYPES:
    raise ALError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()})")
  dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
  header = 4 + 4 * ndim
  shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
  count = int(np.prod(shape))
  if len(raw) != header + count * dtype.itemsize:
    raise ALError(f"{path}: IDX header says shape {shape} but the file holds "
                  f"{len(raw) - header} data bytes")
  data = np.frombuffer(raw, dtype, count=count, offset=header).reshape(shape)
  return data.astype(dtype.newbyteorder("="))


def channel_stats(images: np.ndarray, chunk: int = 4096):
  """Per-channel mean and std of uint8 images, in [0, 1] units.

  Accumulates sums in float64 over chunks of images, so CIFAR-sized splits need
  no full-size float copy.

  Args:
    images: uint8 [N, H, W, C].
    chunk: images per accumulation step.

  Returns:
    `(mean, std)`, each a tuple of C python floats.
  """
  channels = images.shape[-1]
  total = np.zeros(channels)
  total_sq = np.zeros(channels)
  for start in range(0, len(images), chunk):
    block = images[start:start + chunk].reshape(-1, channels).astype(np.float64)
    total += block.sum(axis=0)
    total_sq += np.square(block).sum(axis=0)
  count = images.size // channels
  mean = total / count
  std = np.sqrt(np.maximum(total_sq / count - np.square(mean), 0.0))
  return tuple(float(m) for m in mean / 255.0), tuple(float(s) for s in std / 255.0)


def _make_dataset(name, x_train, y_train, x_test, y_test, num_classes, *, flip,
                  crop_pad) -> Dataset:
  """Builds a `Dataset` with canonical dtypes and train-split statistics."""
  x_train = np.ascontiguousarray(x_train, dtype=np.uint8)
  mean, std = channel_stats(x_train)
  return Dataset(
      x_train=x_train,
      y_train=np.asarray(y_train, dtype=np.int32),
      x_test=np.ascontiguousarray(x_test, dtype=np.uint8),
      y_test=np.asarray(y_test, dtype=np.int32),
      num_classes=int(num_classes),
      name=name,
      mean=mean,
      std=std,
      flip=flip,
      crop_pad=crop_pad,
  )


@DATASETS.register("digits")
def load_digits(data_dir: str | None = None, seed: int = 0) -> Dataset:
  """scikit-learn's bundled 8x8 handwritten digits, scaled to uint8 [N, 8, 8, 1].

  Args:
    data_dir: unused; the data ships with scikit-learn.
    seed: unused; the stratified split always uses `DIGITS_SPLIT_SEED`.

  Returns:
    1,297 train and 500 test images, 10 classes.
  """
  del data_dir, seed
  from sklearn import datasets as sk_datasets  # pylint: disable=g-import-not-at-top
  from sklearn import model_selection  # pylint: disable=g-import-not-at-top
  digits = sk_datasets.load_digits()
  # Pixel values are counts 0..16 (4x4 blocks of a 32x32 bitmap); rescale so
  # every dataset shares the uint8 0..255 convention.
  images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
  x_train, x_test, y_train, y_test = model_selection.train_test_split(
      images, digits.target, test_size=DIGITS_NUM_TEST, stratify=digits.target,
      random_state=DIGITS_SPLIT_SEED)
  # No flips: a mirrored digit is another symbol (or none). A 1-pixel pad is the
  # 8x8 analogue of the usual 2-4 pixel crops.
  return _make_dataset("digits", x_train, y_train, x_test, y_test, 10,
                       flip=False, crop_pad=1)


@DATASETS.register("synthetic")
def load_synthetic(data_dir: str | None = None, seed: int = 0) -> Dataset:
  """Learnable noisy-template images for tests, deterministic.

  Each class is a fixed random template (uniform in [0, 255]); an image is its
  class template plus Gaussian pixel noise (`SYNTHETIC_NOISE_STD`), clipped to
  uint8. Classes are balanced. Sizes come from the module-level `SYNTHETIC_*`
  constants.

  Args:
    data_dir: unused.
    seed: unused; the data always come from `SYNTHETIC_SEED`.

  Returns:
    A `Dataset` of uint8 [N, S, S, 1] images.
  """
  del data_dir, seed
  rng = np.random.default_rng(SYNTHETIC_SEED)
  size, classes = SYNTHETIC_IMAGE_SIZE, SYNTHETIC_NUM_CLASSES
  templates = rng.uniform(0.0, 255.0, size=(classes, size, size, 1))

  def sample(n):
    labels = rng.permutation(np.arange(n) % classes)
    noise = rng.normal(0.0, SYNTHETIC_NOISE_STD, size=(n, size, size, 1))
    images = np.clip(np.round(templates[labels] + noise), 0, 255).astype(np.uint8)
    return images, labels

  x_train, y_train = sample(SYNTHETIC_NUM_TRAIN)
  x_test, y_test = sample(SYNTHETIC_NUM_TEST)
  # No augmentation: a shifted or mirrored template is no longer its class.
  return _make_dataset("synthetic", x_train, y_train, x_test, y_test, classes,
                       flip=False, crop_pad=0)


def _not_prepared_message(name: str, tfds_name: str, root: str) -> str:
  """One line naming the command that prepares `name` for `--data_dir`."""
  # Preparing needs TensorFlow (the optional [data] extra) and the network or the
  # original files; ArrayRecord is the format readable without TF.
  return (f"dataset {name!r} (TFDS {tfds_name}) is not prepared in {root}; prepare it "
          f"once with: pip install -e '.[data]' && python -m experiments.prepare_data "
          f"--dataset={name} --data_dir={root}")


@contextlib.contextmanager
def quiet_absl():
  """Silences TFDS's absl warnings about absent version folders while looking for data: the
  one-line error below says what the user needs."""
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  old = absl_logging.get_verbosity()
  absl_logging.set_verbosity(absl_logging.ERROR)
  try:
    yield
  finally:
    absl_logging.set_verbosity(old)


def _read_split(source, image_shape) -> tuple[np.ndarray, np.ndarray]:
  """Reads a whole TFDS data source into uint8 images and int32 labels."""
  # Batched `source.__getitems__` is ~2x faster than item by item (4.4 s vs 10.4 s
  # for 50k CIFAR-sized PNGs; 2.1 s vs 3.8 s for 10k Fashion-MNIST, 2-core CPU), but
  # tfds 4.9.10's `tfds.testing.mock_data` cannot serve it (its mock `__getitems__`
  # is not bound to the source): fall back to items there.
  num = len(source)
  images = np.empty((num, *image_shape), np.uint8)
  labels = np.empty((num,), np.int32)
  chunk = 4096
  try:
    for start in range(0, num, chunk):
      for i, example in enumerate(source.__getitems__(list(range(start, min(num, start + chunk)))),
                                  start):
        images[i] = example["image"]
        labels[i] = example["label"]
    return images, labels
  except (TypeError, AttributeError):
    pass
  for i in range(num):
    example = source[i]
    images[i] = example["image"]
    labels[i] = example["label"]
  return images, labels


def _load_tfds(name: str, tfds_name: str, data_dir: str | None, *, flip: bool,
               crop_pad: int) -> Dataset:
  """Loads the train and test splits of a prepared TFDS dataset, without TF.

  Args:
    name: our registry name (for messages and `Dataset.name`).
    tfds_name: the TFDS builder name.
    data_dir: TFDS data directory; None uses TFDS's default
      (`$TFDS_DATA_DIR` or `~/tensorflow_datasets`).
    flip: whether horizontal flips are a valid augmentation.
    crop_pad: padding for random-crop augmentation.

  Returns:
    The whole splits as a `Dataset`.

  Raises:
    ALError: tensorflow_datasets is missing, or the dataset is not prepared in
      a format that can be read without TensorFlow.
  """
  try:
    # Imported here: ~0.3 s, and only these datasets need it.
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ALError(f"dataset {name!r} needs tensorflow-datasets: "
                  "pip install tensorflow-datasets") from e
  # Building a builder only reads local metadata (TFDS's GCS lookups are off by
  # default), so the check below is instant. `tfds.load` would instead try to
  # download, retrying for minutes when offline.
  # `~` in a data_dir given through the API or `--set data_dir=`: TFDS keeps it literally.
  data_dir = os.path.expanduser(data_dir) if data_dir else data_dir
  with quiet_absl():
    builder = tfds.builder(tfds_name, data_dir=data_dir)
    prepared = builder.is_prepared()
  if not prepared:
    raise ALError(_not_prepared_message(name, tfds_name,
                                        os.fspath(builder.data_dir_root)))
  try:
    train, test = builder.as_data_source(split=["train", "test"])
  except NotImplementedError as e:
    # TFRecord (the default of `download_and_prepare`) has no random access and
    # is only readable through tf.data, i.e. with TensorFlow installed.
    raise ALError(
        f"dataset {name!r} is prepared in {builder.data_dir} as "
        f"{builder.info.file_format}, which needs TensorFlow to read; prepare it "
        f"again as ArrayRecord in another data_dir: python -m experiments.prepare_data "
        f"--dataset={name} --data_dir=OTHER_DIR") from e
  features = builder.info.features
  image_shape = tuple(features["image"].shape)
  x_train, y_train = _read_split(train, image_shape)
  x_test, y_test = _read_split(test, image_shape)
  return _make_dataset(name, x_train, y_train, x_test, y_test,
                       features["label"].num_classes, flip=flip,
                       crop_pad=crop_pad)


def _tfds_prepared(tfds_name: str, data_dir: str) -> bool:
  """Whether any version of `tfds_name` is prepared under `data_dir` (no TFDS import when
  the folder is absent, keeping the Debian path fast)."""
  data_dir = os.path.expanduser(data_dir)
  if not os.path.isdir(os.path.join(data_dir, tfds_name)):
    return False
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  with quiet_absl():
    return tfds.builder(tfds_name, data_dir=data_dir).is_prepared()


@DATASETS.register("fashion_mnist")
def load_fashion_mnist(data_dir: str | None = None, seed: int = 0) -> Dataset:
  """Fashion-MNIST, 28x28x1, 60k/10k.

  Read from `FASHION_MNIST_DIR` (Debian's `dataset-fashion-mnist`) when all
  four files are there, else from TFDS `fashion_mnist` in `data_dir`.

  Args:
    data_dir: TFDS data directory for the fallback.
    seed: unused; the splits are fixed.

  Returns:
    The `Dataset`.
  """
  del seed
  # 2-pixel crops, no flips: the footwear classes all point one way (in the training set
  # 100% of ankle boots, 99.4% of sneakers and 92% of sandals carry more ink on the same
  # half), so a mirrored shoe is an image the test set never shows. Measured with the cpu
  # preset at 200 random labels (3 seeds): flips cost 0.6 points of test accuracy.
  flip, crop_pad = False, 2
  paths = {k: os.path.join(FASHION_MNIST_DIR, f) for k, f in FASHION_MNIST_FILES.items()}
  # A data_dir the user prepared (experiments.prepare_data) is what they asked for.
  if data_dir and _tfds_prepared("fashion_mnist", data_dir):
    return _load_tfds("fashion_mnist", "fashion_mnist", data_dir, flip=flip,
                      crop_pad=crop_pad)
  if not all(os.path.isfile(p) for p in paths.values()):
    try:
      return _load_tfds("fashion_mnist", "fashion_mnist", data_dir, flip=flip,
                        crop_pad=crop_pad)
    except ALError as e:
      raise ALError(f"{e} (or: apt-get install dataset-fashion-mnist)") from e
  arrays = {k: read_idx(p) for k, p in paths.items()}
  return _make_dataset("fashion_mnist", arrays["x_train"][..., None],
                       arrays["y_train"], arrays["x_test"][..., None],
                       arrays["y_test"], 10, flip=flip, crop_pad=crop_pad)


@DATASETS.register("mnist")
def load_mnist(data_dir: str | None = None, seed: int = 0) -> Dataset:
  """MNIST from TFDS `mnist`, 28x28x1; no flips (mirrored digits change meaning)."""
  del seed
  return _load_tfds("mnist", "mnist", data_dir, flip=False, crop_pad=2)


@DATASETS.register("svhn")
def load_svhn(data_dir: str | None = None, seed: int = 0) -> Dataset:
  """SVHN from TFDS `svhn_cropped` (73,257 train, 26,032 test; no `extra`), 32x32x3.

  No flips: house-number digits are not mirror-symmetric.
  """
  del seed
  return _load_tfds("svhn", "svhn_cropped", data_dir, flip=False, crop_pad=2)


@DATASETS.register("cifar10")
def load_cifar10(data_dir: str | None = None, seed: int = 0) -> Dataset:
  """CIFAR-10 from TFDS `cifar10`, 32x32x3, with the standard flip + 4-pixel crop."""
  del seed
  return _load_tfds("cifar10", "cifar10", data_dir, flip=True, crop_pad=4)


@DATASETS.register("cifar100")
def load_cifar100(data_dir: str | None = None, seed: int = 0) -> Dataset:
  """CIFAR-100 (100 fine labels) from TFDS `cifar100`, flip + 4-pixel crop."""
  del seed
  return _load_tfds("cifar100", "cifar100", data_dir, flip=True, crop_pad=4)
