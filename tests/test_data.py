"""Tests for the dataset loaders (al_jax/data/loaders.py).

TFDS-backed loaders run against fake prepared data directories written here
(metadata, plus ArrayRecord files of PNG-encoded examples where records are
read for real) and under `tfds.testing.mock_data`; none of it needs TensorFlow
or the network.
"""

import gzip
import io
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from al_jax import ALError
from al_jax.data import loaders
from al_jax.data.datasets import DATASETS, Dataset

# Registry name -> (TFDS name, image shape, num classes, flip, crop_pad).
TFDS_LOADERS = {
    "mnist": ("mnist", (28, 28, 1), 10, False, 2),
    "fashion_mnist": ("fashion_mnist", (28, 28, 1), 10, False, 2),  # footwear faces one way
    "svhn": ("svhn_cropped", (32, 32, 3), 10, False, 2),
    "cifar10": ("cifar10", (32, 32, 3), 10, True, 4),
    "cifar100": ("cifar100", (32, 32, 3), 100, True, 4),
}


def _check_dataset(ds: Dataset, name, image_shape, num_classes):
  assert isinstance(ds, Dataset)
  assert ds.name == name
  assert ds.num_classes == num_classes
  for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
    assert x.dtype == np.uint8 and y.dtype == np.int32
    assert x.shape[1:] == image_shape and x.shape[0] == y.shape[0] > 0
    assert y.min() >= 0 and y.max() < num_classes
  channels = image_shape[-1]
  assert len(ds.mean) == len(ds.std) == channels
  assert all(isinstance(v, float) for v in ds.mean + ds.std)
  assert all(0.0 < m < 1.0 for m in ds.mean) and all(0.0 < s < 1.0 for s in ds.std)


@pytest.fixture
def no_debian_fashion(monkeypatch, tmp_path):
  """Makes `fashion_mnist` take its TFDS path even where the Debian files exist."""
  monkeypatch.setattr(loaders, "FASHION_MNIST_DIR", str(tmp_path / "no-debian"))


def _png(image: np.ndarray) -> bytes:
  import PIL.Image  # pylint: disable=g-import-not-at-top
  buf = io.BytesIO()
  PIL.Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buf, "PNG")
  return buf.getvalue()


def _prepare_fake_tfds(tfds_name, data_dir, examples, file_format="array_record"):
  """Writes what `download_and_prepare` would, without TensorFlow.

  Args:
    tfds_name: TFDS builder name.
    data_dir: TFDS data directory.
    examples: split -> (images, labels); records are written only for splits
      with images (mock_data does not read records, only the metadata).
    file_format: format recorded in `dataset_info.json`.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from tensorflow_datasets.proto import tf_example_pb2  # pylint: disable=g-import-not-at-top
  from tensorflow_datasets.proto import tf_feature_pb2  # pylint: disable=g-import-not-at-top
  builder = tfds.builder(tfds_name, data_dir=str(data_dir))
  info = builder.info
  info.set_file_format(file_format, override=True)
  template = tfds.core.ShardedFileTemplate(
      data_dir=builder.data_path, dataset_name=builder.name,
      filetype_suffix=file_format)
  builder.data_path.mkdir(parents=True, exist_ok=True)

  def feature(key, value):
    if key == "image":
      return tf_feature_pb2.Feature(bytes_list=tf_feature_pb2.BytesList(value=[_png(value)]))
    if key == "id":
      return tf_feature_pb2.Feature(bytes_list=tf_feature_pb2.BytesList(value=[b"x"]))
    return tf_feature_pb2.Feature(int64_list=tf_feature_pb2.Int64List(value=[int(value)]))

  split_infos = []
  for split, (images, labels) in examples.items():
    split_template = template.replace(split=split)
    if images is not None:
      from array_record.python import array_record_module  # pylint: disable=g-import-not-at-top
      path = split_template.sharded_filepath(shard_index=0, num_shards=1)
      writer = array_record_module.ArrayRecordWriter(os.fspath(path), "group_size:1")
      for image, label in zip(images, labels):
        values = {k: label for k in info.features}  # label, coarse_label
        values["image"] = image
        feats = {k: feature(k, v) for k, v in values.items()}
        writer.write(tf_example_pb2.Example(
            features=tf_feature_pb2.Features(feature=feats)).SerializeToString())
      writer.close()
    split_infos.append(tfds.core.SplitInfo(
        name=split, shard_lengths=[len(labels)], num_bytes=0,
        filename_template=split_template))
  info.set_splits(tfds.core.SplitDict(split_infos))
  info.write_to_directory(builder.data_path)


# ---------------------------------------------------------------- registry


def test_unknown_name_lists_valid_names():
  with pytest.raises(ALError) as e:
    DATASETS.get("imagenet")
  for name in ["digits", "synthetic", *TFDS_LOADERS]:
    assert name in str(e.value)
    assert name in DATASETS


def test_tensorflow_datasets_is_imported_lazily():
  code = ("import sys, al_jax.data.loaders; "
          "assert 'tensorflow_datasets' not in sys.modules, 'eager tfds import'")
  subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# ---------------------------------------------------------------- digits


def test_digits_shapes_and_split():
  ds = DATASETS.get("digits")()
  _check_dataset(ds, "digits", (8, 8, 1), 10)
  assert len(ds.x_train) == 1797 - 500 and len(ds.x_test) == 500
  assert ds.x_train.max() == 255  # 0..16 rescaled
  assert not ds.flip and ds.crop_pad == 1
  # Stratified: every class holds ~500 / 10 test images.
  assert np.bincount(ds.y_test).min() >= 48


def test_digits_deterministic_and_seed_independent():
  a = loaders.load_digits(seed=0)
  b = loaders.load_digits(seed=7)
  for field in ("x_train", "y_train", "x_test", "y_test"):
    np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
  assert a.mean == b.mean and a.std == b.std


def test_channel_stats_matches_numpy():
  x = np.random.default_rng(0).integers(0, 256, (10, 4, 4, 3), dtype=np.uint8)
  mean, std = loaders.channel_stats(x, chunk=3)
  np.testing.assert_allclose(mean, x.mean(axis=(0, 1, 2)) / 255, rtol=1e-12)
  np.testing.assert_allclose(std, x.std(axis=(0, 1, 2)) / 255, rtol=1e-9)


# ---------------------------------------------------------------- synthetic


def test_synthetic_deterministic_and_balanced():
  a = loaders.load_synthetic()
  b = loaders.load_synthetic(seed=3)
  size = loaders.SYNTHETIC_IMAGE_SIZE
  _check_dataset(a, "synthetic", (size, size, 1), loaders.SYNTHETIC_NUM_CLASSES)
  assert len(a.x_train) == loaders.SYNTHETIC_NUM_TRAIN
  assert len(a.x_test) == loaders.SYNTHETIC_NUM_TEST
  np.testing.assert_array_equal(a.x_train, b.x_train)
  np.testing.assert_array_equal(a.y_test, b.y_test)
  assert np.ptp(np.bincount(a.y_train)) <= 1


def test_synthetic_sizes_follow_module_defaults(monkeypatch):
  monkeypatch.setattr(loaders, "SYNTHETIC_NUM_TRAIN", 30)
  monkeypatch.setattr(loaders, "SYNTHETIC_NUM_TEST", 20)
  monkeypatch.setattr(loaders, "SYNTHETIC_IMAGE_SIZE", 8)
  ds = loaders.load_synthetic()
  assert ds.x_train.shape == (30, 8, 8, 1) and ds.x_test.shape == (20, 8, 8, 1)


def test_synthetic_is_learnable():
  # Nearest class mean on the train split classifies the test split well.
  ds = loaders.load_synthetic()
  x_train = ds.x_train.reshape(len(ds.x_train), -1).astype(np.float64)
  x_test = ds.x_test.reshape(len(ds.x_test), -1).astype(np.float64)
  centroids = np.stack([x_train[ds.y_train == c].mean(0) for c in range(ds.num_classes)])
  dists = ((x_test[:, None, :] - centroids[None]) ** 2).sum(-1)
  assert (dists.argmin(1) == ds.y_test).mean() > 0.9


# ---------------------------------------------------------------- IDX / Debian


def _write_idx(path, array: np.ndarray, code: int):
  header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
  big_endian = array.astype(array.dtype.newbyteorder(">"))
  with gzip.open(path, "wb") as f:
    f.write(header + big_endian.tobytes())


def test_read_idx_gzip_roundtrip(tmp_path):
  images = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
  _write_idx(tmp_path / "x.gz", images, 0x08)
  out = loaders.read_idx(str(tmp_path / "x.gz"))
  assert out.dtype == np.uint8
  np.testing.assert_array_equal(out, images)
  # Multi-byte types are big-endian on disk, native in memory.
  ints = np.array([[1, -2], [70000, 3]], np.int32)
  _write_idx(tmp_path / "i.gz", ints, 0x0C)
  out = loaders.read_idx(str(tmp_path / "i.gz"))
  assert out.dtype == np.int32 and out.dtype.isnative
  np.testing.assert_array_equal(out, ints)


def test_read_idx_rejects_bad_files(tmp_path):
  (tmp_path / "bad").write_bytes(b"\x12\x34\x56\x78rest")
  with pytest.raises(ALError, match="not an IDX file"):
    loaders.read_idx(str(tmp_path / "bad"))
  _write_idx(tmp_path / "short.gz", np.zeros((2, 3), np.uint8), 0x08)
  raw = gzip.decompress((tmp_path / "short.gz").read_bytes())
  (tmp_path / "short").write_bytes(raw[:-1])
  with pytest.raises(ALError, match="IDX header says shape"):
    loaders.read_idx(str(tmp_path / "short"))


def test_fashion_mnist_reads_debian_idx_files(monkeypatch, tmp_path):
  rng = np.random.default_rng(0)
  arrays = {
      "x_train": rng.integers(1, 255, (6, 28, 28), dtype=np.uint8),
      "y_train": np.arange(6, dtype=np.uint8),
      "x_test": rng.integers(1, 255, (4, 28, 28), dtype=np.uint8),
      "y_test": np.arange(4, dtype=np.uint8) + 5,
  }
  for key, file_name in loaders.FASHION_MNIST_FILES.items():
    _write_idx(tmp_path / file_name, arrays[key], 0x08)
  monkeypatch.setattr(loaders, "FASHION_MNIST_DIR", str(tmp_path))
  ds = loaders.load_fashion_mnist(data_dir=str(tmp_path / "unused"))
  _check_dataset(ds, "fashion_mnist", (28, 28, 1), 10)
  np.testing.assert_array_equal(ds.x_train[..., 0], arrays["x_train"])
  np.testing.assert_array_equal(ds.y_test, arrays["y_test"])
  assert not ds.flip and ds.crop_pad == 2


@pytest.mark.skipif(
    not os.path.isdir(loaders.FASHION_MNIST_DIR),
    reason="Debian package dataset-fashion-mnist not installed")
def test_fashion_mnist_debian_package():
  ds = loaders.load_fashion_mnist()
  _check_dataset(ds, "fashion_mnist", (28, 28, 1), 10)
  assert len(ds.x_train) == 60000 and len(ds.x_test) == 10000
  # The published Fashion-MNIST statistics.
  assert ds.mean[0] == pytest.approx(0.2860, abs=1e-4)
  assert ds.std[0] == pytest.approx(0.3530, abs=1e-4)


# ---------------------------------------------------------------- TFDS


@pytest.mark.usefixtures("no_debian_fashion")
@pytest.mark.parametrize("name", sorted(TFDS_LOADERS))
def test_tfds_loader_under_mock_data(name, tmp_path):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  tfds_name, shape, num_classes, flip, crop_pad = TFDS_LOADERS[name]
  # MockPolicy.USE_FILES with real-looking metadata: the loader's "is it
  # prepared?" check then passes as it would on a prepared data_dir. (No
  # metadata ships with this tfds, so AUTO would fall back to USE_CODE, whose
  # data_dir does not exist.)
  meta_dir = tmp_path / "meta"
  _prepare_fake_tfds(tfds_name, meta_dir, {"train": (None, range(20)),
                                           "test": (None, range(10))})
  with tfds.testing.mock_data(num_examples=12, policy=tfds.testing.MockPolicy.USE_FILES,
                              data_dir=str(meta_dir)):
    ds = DATASETS.get(name)(data_dir=str(tmp_path / "ignored-under-mock"))
  _check_dataset(ds, name, shape, num_classes)
  assert len(ds.x_train) == len(ds.x_test) == 12
  assert ds.flip == flip and ds.crop_pad == crop_pad


def test_tfds_loader_reads_array_record_files(tmp_path):
  # No mocks: real metadata, ArrayRecord files and PNG decoding.
  rng = np.random.default_rng(0)
  splits = {
      "train": (rng.integers(0, 256, (7, 32, 32, 3), dtype=np.uint8), np.arange(7) * 13 % 100),
      "test": (rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8), np.array([99, 0, 5])),
  }
  _prepare_fake_tfds("cifar100", tmp_path, splits)
  ds = loaders.load_cifar100(data_dir=str(tmp_path))
  _check_dataset(ds, "cifar100", (32, 32, 3), 100)
  for split, (images, labels) in splits.items():
    np.testing.assert_array_equal(getattr(ds, f"x_{split}"), images)
    np.testing.assert_array_equal(getattr(ds, f"y_{split}"), labels)
  expected_mean, _ = loaders.channel_stats(splits["train"][0])
  assert ds.mean == expected_mean


@pytest.mark.usefixtures("no_debian_fashion")
@pytest.mark.parametrize("name", sorted(TFDS_LOADERS))
def test_tfds_not_prepared_fails_fast_with_instructions(name, tmp_path):
  tfds_name = TFDS_LOADERS[name][0]
  start = time.monotonic()
  with pytest.raises(ALError) as e:
    DATASETS.get(name)(data_dir=str(tmp_path))
  assert time.monotonic() - start < 5.0  # no download attempts or retries
  message = str(e.value)
  assert "\n" not in message
  assert f"TFDS {tfds_name}" in message and "not prepared" in message
  # The one command that prepares it, with the same data_dir.
  assert (f"python -m experiments.prepare_data --dataset={name} --data_dir={tmp_path}"
          in message)
  assert "pip install -e '.[data]'" in message
  if name == "fashion_mnist":
    assert "apt-get install dataset-fashion-mnist" in message


def test_tfds_tfrecord_data_asks_for_array_record(tmp_path):
  # Prepared by default `download_and_prepare` (TFRecord): unreadable without TF.
  _prepare_fake_tfds("mnist", tmp_path, {"train": (None, range(5)), "test": (None, range(5))},
                     file_format="tfrecord")
  with pytest.raises(ALError, match="experiments.prepare_data --dataset=mnist") as e:
    loaders.load_mnist(data_dir=str(tmp_path))
  assert "\n" not in str(e.value)


def test_a_tilde_data_dir_is_the_home_directory(tmp_path, monkeypatch):
  """`~` reaches the loaders literally through the API or `--set data_dir=~/…` (the shell does
  not expand it after `=`); TFDS would keep it and look in a folder named `~`."""
  monkeypatch.setenv("HOME", str(tmp_path))
  with pytest.raises(ALError) as e:
    DATASETS.get("mnist")(data_dir="~/tfds")
  assert f"--data_dir={tmp_path}/tfds" in str(e.value) and "~" not in str(e.value)
