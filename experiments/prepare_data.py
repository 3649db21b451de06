"""Prepares a paper dataset once: python -m experiments.prepare_data --dataset=svhn [--data_dir=D]

Downloads and converts `svhn`, `cifar10`, `cifar100`, `mnist` or `fashion_mnist` with
TensorFlow Datasets into ArrayRecord files (the format al_jax reads without TensorFlow),
showing TFDS's download and conversion progress, then reads the result back through al_jax's
loader and prints the `--data_dir` to pass to `experiments.main`.

Converting needs TensorFlow, which al_jax itself does not: install it with the optional extra

    pip install -e '.[data]'

Without internet, put the dataset's original files in a folder and pass `--manual_dir=M`
(TFDS's manual-download mechanism: each file under its upstream name, checked against TFDS's
registered checksums). For Fashion-MNIST, `--from_debian` builds that folder from Debian's
`dataset-fashion-mnist` package (apt-get install dataset-fashion-mnist): Debian ships the
upstream deflate streams with rewritten gzip headers, and restoring the upstream header
restores the upstream files byte for byte.
"""

import gzip
import os
import socket
import struct
import sys
import tempfile
import time
import urllib.parse
from typing import Dict, Optional

from absl import flags, logging

from al_jax import ALError
from experiments import cli

FLAGS = flags.FLAGS
flags.DEFINE_enum("dataset", None, ["svhn", "cifar10", "cifar100", "mnist", "fashion_mnist"],
                  "Dataset to prepare.")
flags.DEFINE_string("data_dir", None, "TFDS data directory to write (default: TFDS's, "
                    "$TFDS_DATA_DIR or ~/tensorflow_datasets).")
flags.DEFINE_string("manual_dir", None, "Folder holding the dataset's original files, for "
                    "machines without internet.")
flags.DEFINE_bool("from_debian", False, "fashion_mnist only: use Debian's "
                  "dataset-fashion-mnist files (offline).")
flags.DEFINE_bool("verify", True, "Read the prepared splits back through al_jax's loader.")

# Upstream gzip headers of the Fashion-MNIST files (zalandoresearch/fashion-mnist, as TFDS's
# url_checksums/fashion_mnist.txt registers them): FNAME = the name without `.gz`, and these
# modification times. Debian's files carry the same deflate payload under a header with no
# name and another MTIME.
FASHION_MNIST_MTIME = {"train": 1504176606, "t10k": 1504176627}
_NET_TIMEOUT_S = 3.0


def debian_to_upstream_gzip(raw: bytes, name: str) -> bytes:
  """The upstream `.gz` file `name` from Debian's copy `raw` (same deflate stream).

  Args:
    raw: Debian's file: a gzip member without FNAME.
    name: the upstream file name, e.g. "train-images-idx3-ubyte.gz".

  Returns:
    The bytes of the upstream file.

  Raises:
    ALError: `raw` is not a plain gzip member (another header layout was not measured).
  """
  if raw[:3] != b"\x1f\x8b\x08" or raw[3] != 0:
    raise ALError(f"{name}: not a gzip file without optional header fields "
                  f"(header {raw[:10].hex()}); cannot rebuild the upstream header")
  mtime = FASHION_MNIST_MTIME[name.split("-", 1)[0]]
  # RFC 1952: ID1 ID2 CM FLG(FNAME) MTIME(le32) XFL OS, then the zero-terminated name.
  header = b"\x1f\x8b\x08\x08" + struct.pack("<I", mtime) + raw[8:10]
  return header + name[:-len(".gz")].encode("latin-1") + b"\0" + raw[10:]


def fashion_mnist_from_debian(manual_dir: str, debian_dir: Optional[str] = None) -> Dict[str, str]:
  """Writes the four upstream Fashion-MNIST files into `manual_dir`; returns name → path."""
  from al_jax.data import loaders  # pylint: disable=g-import-not-at-top
  debian_dir = debian_dir or loaders.FASHION_MNIST_DIR
  os.makedirs(manual_dir, exist_ok=True)
  out = {}
  for name in loaders.FASHION_MNIST_FILES.values():
    src = os.path.join(debian_dir, name)
    if not os.path.isfile(src):
      raise ALError(f"{src} not found: apt-get install dataset-fashion-mnist")
    with open(src, "rb") as f:
      raw = f.read()
    data = debian_to_upstream_gzip(raw, name)
    # The payload must still decompress: a wrong header would only fail TFDS's checksum.
    gzip.decompress(data)
    out[name] = os.path.join(manual_dir, name)
    with open(out[name], "wb") as f:
      f.write(data)
  return out


def _reachable(url: str) -> bool:
  """Whether the host of `url` accepts a TCP connection within a few seconds."""
  parts = urllib.parse.urlsplit(url)
  port = parts.port or (443 if parts.scheme == "https" else 80)
  try:
    with socket.create_connection((parts.hostname, port), timeout=_NET_TIMEOUT_S):
      return True
  except OSError:
    return False


def prepare(dataset: str, data_dir: Optional[str] = None, manual_dir: Optional[str] = None,
            from_debian: bool = False, verify: bool = True, log=print) -> str:
  """Prepares `dataset` as TFDS ArrayRecord files; returns the TFDS data_dir root."""
  from al_jax.data import loaders  # pylint: disable=g-import-not-at-top
  tfds_name = loaders.TFDS_NAMES[dataset]
  if from_debian and dataset != "fashion_mnist":
    raise ALError("--from_debian applies to fashion_mnist only (Debian packages no other)")
  try:
    import tensorflow  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    raise ALError("preparing a TFDS dataset needs TensorFlow: pip install -e '.[data]' "
                  "(or pip install tensorflow-cpu)") from None
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  tfds.display_progress_bar(True)
  data_dir = os.path.expanduser(data_dir) if data_dir else data_dir
  manual_dir = os.path.expanduser(manual_dir) if manual_dir else manual_dir
  with loaders.quiet_absl():
    builder = tfds.builder(tfds_name, data_dir=data_dir)
    prepared = builder.is_prepared()
  root = os.fspath(builder.data_dir_root)
  if prepared:
    log(f"{dataset}: already prepared in {builder.data_dir}")
  else:
    if from_debian:
      manual_dir = manual_dir or tempfile.mkdtemp(prefix="al_jax_fashion_mnist_")
      log(f"[1/3] rebuilding the upstream Fashion-MNIST files from Debian's into {manual_dir}")
      fashion_mnist_from_debian(manual_dir)
    urls = builder.url_infos or {}
    names = [info.filename for info in urls.values() if info.filename]
    have = bool(manual_dir) and bool(names) and all(
        os.path.isfile(os.path.join(manual_dir, n)) for n in names)
    if not have and urls and not _reachable(next(iter(urls))):
      where = f" into --manual_dir={manual_dir}" if manual_dir else " into a folder passed as --manual_dir"
      hint = (" or pass --from_debian (apt-get install dataset-fashion-mnist)"
              if dataset == "fashion_mnist" else "")
      raise ALError(f"{dataset}: cannot reach {urllib.parse.urlsplit(next(iter(urls))).hostname}"
                    f" (offline?); copy the files {', '.join(names)}{where}{hint}")
    log(f"[2/3] preparing TFDS {tfds_name} as ArrayRecord in {root}"
        + (f" from {manual_dir}" if manual_dir else " (downloading)"))
    config = tfds.download.DownloadConfig(manual_dir=manual_dir) if manual_dir else None
    t0 = time.time()
    try:
      builder.download_and_prepare(file_format="array_record", download_config=config)
    except tfds.download.NonMatchingChecksumError as e:
      first = str(e).strip().splitlines()[0] if str(e).strip() else "checksum mismatch"
      raise ALError(f"{dataset}: a file does not match TFDS's registered checksum ({first})"
                    ) from None
    log(f"{dataset}: prepared in {time.time() - t0:.0f} s")
  if verify:
    from al_jax.data import DATASETS  # pylint: disable=g-import-not-at-top
    log("[3/3] reading it back through al_jax's loader")
    ds = DATASETS.get(dataset)(data_dir=root)
    log(f"{dataset}: {len(ds.y_train)} train and {len(ds.y_test)} test images "
        f"{ds.image_shape}, {ds.num_classes} classes")
  log(f"ready: python -m experiments.main --dataset={dataset} --data_dir={root}")
  return root


def main(argv):
  if len(argv) > 1:
    cli.fail(f"unexpected arguments: {' '.join(argv[1:])}")
  # TFDS's progress bars and our step lines say where it is; its INFO lines only repeat them.
  logging.set_verbosity(logging.WARNING)
  if not FLAGS.dataset:
    cli.fail("--dataset is required: svhn, cifar10, cifar100, mnist or fashion_mnist")
  try:
    cli.check_dir_or_new("--data_dir", FLAGS.data_dir)
    if FLAGS.from_debian:
      cli.check_dir_or_new("--manual_dir", FLAGS.manual_dir)
    elif FLAGS.manual_dir:
      cli.check_existing_dir("--manual_dir", FLAGS.manual_dir)
    prepare(FLAGS.dataset, FLAGS.data_dir, FLAGS.manual_dir, FLAGS.from_debian, FLAGS.verify,
            log=lambda m: print(m, flush=True))
  except ALError as e:
    cli.fail(e)


if __name__ == "__main__":
  cli.run(main)
