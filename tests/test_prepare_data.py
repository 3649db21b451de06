"""experiments.prepare_data: TFDS preparation, offline from Debian's Fashion-MNIST files."""

import collections
import gzip
import hashlib
import importlib.util
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

from al_jax import ALError
from al_jax.data import loaders
from experiments import prepare_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_HAVE_DEBIAN = all(os.path.isfile(os.path.join(loaders.FASHION_MNIST_DIR, f))
                   for f in loaders.FASHION_MNIST_FILES.values())
_HAVE_TF = importlib.util.find_spec("tensorflow") is not None


def _tfds_checksums(name):
  """{file name: (size, sha256)} from TFDS's registered url_checksums/<name>.txt."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  path = os.path.join(os.path.dirname(tfds.__file__), "url_checksums", f"{name}.txt")
  out = {}
  with open(path) as f:
    for line in f:
      if line.strip() and not line.startswith("#"):
        _, size, sha, fname = line.split()
        out[fname] = (int(size), sha)
  return out


def test_debian_header_becomes_the_upstream_header():
  payload = b"\x00\x00\x08\x01" + bytes(range(200))
  debian = gzip.compress(payload, mtime=1591315200)  # no FNAME, another MTIME: Debian's kind
  assert debian[3] == 0
  up = prepare_data.debian_to_upstream_gzip(debian, "t10k-labels-idx1-ubyte.gz")
  assert up[:4] == b"\x1f\x8b\x08\x08"  # FNAME flag
  assert struct.unpack("<I", up[4:8])[0] == 1504176627  # t10k-* MTIME
  assert up[10:10 + len("t10k-labels-idx1-ubyte") + 1] == b"t10k-labels-idx1-ubyte\0"
  assert up.endswith(debian[10:])  # the deflate stream and trailer are untouched
  assert gzip.decompress(up) == payload
  with pytest.raises(ALError, match="cannot rebuild"):
    prepare_data.debian_to_upstream_gzip(b"not gzip at all", "train-images-idx3-ubyte.gz")


@pytest.mark.skipif(not _HAVE_DEBIAN, reason="Debian's dataset-fashion-mnist is not installed "
                    "(apt-get install dataset-fashion-mnist)")
def test_rebuilt_debian_files_match_tfds_checksums(tmp_path):
  written = prepare_data.fashion_mnist_from_debian(str(tmp_path))
  registered = _tfds_checksums("fashion_mnist")
  assert set(written) == set(registered)
  for name, path in written.items():
    data = open(path, "rb").read()
    assert (len(data), hashlib.sha256(data).hexdigest()) == registered[name], name


_CAP = 2000  # examples of each split the TFDS build below writes


@pytest.mark.skipif(not _HAVE_DEBIAN, reason="Debian's dataset-fashion-mnist is not installed "
                    "(apt-get install dataset-fashion-mnist)")
@pytest.mark.skipif(not _HAVE_TF, reason="TensorFlow is not installed; preparing TFDS data "
                    "needs the optional extra: pip install -e '.[data]'")
def test_prepare_fashion_mnist_offline_from_debian_then_train_on_it(tmp_path, monkeypatch):
  data_dir, manual = str(tmp_path / "tfds"), str(tmp_path / "manual")
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  # The user's command (no network: TFDS's manual_dir mechanism), with TFDS's own debugging
  # cap `DownloadConfig.max_examples_per_split` set around it: the builder reads the full
  # upstream files (rebuilt exactly, checksums test above) and writes the first _CAP examples
  # of each split in file order, seconds instead of a minute for all 70,000.
  code = ("import sys; import tensorflow_datasets as tfds; base = tfds.download.DownloadConfig; "
          "tfds.download.DownloadConfig = type('Capped', (base,), {'__init__': lambda self, **kw:"
          f" base.__init__(self, **{{'max_examples_per_split': {_CAP}, **kw}})}}); "
          "from experiments import cli, prepare_data; "
          "sys.argv = ['prepare_data', '--dataset=fashion_mnist', '--from_debian', "
          f"'--data_dir={data_dir}', '--manual_dir={manual}', '--noverify']; "
          "cli.run(prepare_data.main)")
  r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                     text=True, timeout=900)
  assert r.returncode == 0, r.stderr[-3000:]
  assert f"ready: python -m experiments.main --dataset=fashion_mnist --data_dir={data_dir}" \
      in r.stdout
  assert os.path.isdir(os.path.join(data_dir, "fashion_mnist"))

  # The TFDS ArrayRecord data, read without TensorFlow, holds exactly Debian's first _CAP
  # images and labels of each split (TFDS stores examples in its own shuffled order).
  debian = {k: loaders.read_idx(os.path.join(loaders.FASHION_MNIST_DIR, f))[:_CAP]
            for k, f in loaders.FASHION_MNIST_FILES.items()}
  monkeypatch.setattr(loaders, "FASHION_MNIST_DIR", str(tmp_path / "no-debian-here"))
  ds = loaders.load_fashion_mnist(data_dir=data_dir)
  assert ds.x_train.shape == (_CAP, 28, 28, 1) and ds.x_test.shape == (_CAP, 28, 28, 1)
  examples = lambda x, y: collections.Counter(zip((i.tobytes() for i in x), y.tolist()))
  assert examples(ds.x_train[..., 0], ds.y_train) == examples(debian["x_train"],
                                                              debian["y_train"])
  assert examples(ds.x_test[..., 0], ds.y_test) == examples(debian["x_test"], debian["y_test"])

  # And `experiments.main --dataset=fashion_mnist --data_dir=D` trains on it through the
  # TFDS loader (Debian's folder hidden, so nothing else could serve it).
  code = ("import sys; from al_jax.data import loaders; "
          f"loaders.FASHION_MNIST_DIR = {str(tmp_path / 'no-debian-here')!r}; "
          "from experiments import cli, main; "
          f"sys.argv = ['main', '--dataset=fashion_mnist', '--data_dir={data_dir}', "
          "'--cycles=1', '--initial=20', '--epochs=1', '--progress=off', "
          # The loader is under test, not the network: the suite's tiny CNN and few steps.
          "'--set', 'model.kwargs.widths=(8, 16)', '--set', 'model.kwargs.hidden=32', "
          "'--set', 'train.min_steps_per_epoch=1', "
          # The preset's 5,000-point scoring subset needs more than _CAP images; no query here.
          "'--set', 'al.subset=0', "
          f"'--workdir={tmp_path / 'run'}']; cli.run(main.main)")
  r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                     text=True, timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]
  assert "random seed 0: 1 cycles, 20 labels, test accuracy" in r.stdout
