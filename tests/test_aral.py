"""ARAL and VAAL: selection-index mapping, an end-to-end ARAL run with sample grids and resume,
paper-preset shapes at 28×28 and 32×32 (traced, not compiled), and bad input."""

import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from al_jax import ALError, loop
from al_jax import acquisition as acq_lib
from al_jax.data import Pool, Preprocess
from al_jax.models import get_model
from al_jax.objectives import OBJECTIVES
from al_jax.state import ModelState
from experiments.configs import cpu, get_config

quiet = lambda s: None


# --- selection indices ---------------------------------------------------------------------
def _index_images(n):
  """uint8 images [n, 1, 2, 1] whose two pixels spell their own index (idx // 256, idx % 256)."""
  idx = np.arange(n)
  return np.stack([idx // 256, idx % 256], -1).astype(np.uint8).reshape(n, 1, 2, 1)


def _fake_state(kind, table):
  """A ModelState whose encoder decodes each image's index and whose sampler logit is table[i]."""
  decode = lambda x: jnp.round(x[:, 0, 0, 0] * 255) * 256 + jnp.round(x[:, 0, 1, 0] * 255)
  enc = lambda v, x, *y, **kw: decode(x)[:, None]  # "latent" = the sample's own index
  smp = lambda v, z: v["table"][z[:, 0].astype(jnp.int32)]
  side = "encoder" if kind == "aral_sampler" else "vae"
  return ModelState(apply_fn=lambda v, x, **kw: (jnp.zeros((x.shape[0], 3)), {}), variables={},
                    aux={side: {}, "sampler": {"table": jnp.asarray(table)}},
                    aux_apply={side: enc, "sampler": smp})


@pytest.mark.parametrize("kind", ["aral_sampler", "vaal"])
def test_selected_indices_are_the_lowest_sampler_scores(kind):
  n = 700
  rng = np.random.default_rng(0)
  table = rng.permutation(n).astype(np.float32) - 350.0  # a known S logit per sample
  labeled = np.sort(rng.choice(n, 60, replace=False))
  pool = Pool(np.zeros(n, np.int32), labeled)
  state = _fake_state(kind, table)
  x_all = jnp.asarray(_index_images(n))
  prep = Preprocess(mean=(0.0,), std=(1.0,))
  # VAAL's per-point (inference-mode) scores; its default train-mode scoring batches the pool
  # (tests/test_generative_ssl_behaviour.py).
  acq = acq_lib.ACQUISITIONS.get(kind)(**({"vae_train_mode": False} if kind == "vaal" else {}))
  unl = pool.unlabeled
  # Chunks of 64 over 640 candidates (and a padded last chunk with subset=333).
  out = acq_lib.acquire(acq, state, x_all, pool, 1, jax.random.PRNGKey(0), prep, chunk_size=64)
  assert out.indices[0] == unl[np.argmin(table[unl])]
  np.testing.assert_array_equal(out.scores, -table[unl])  # score k belongs to candidate k
  out = acq_lib.acquire(acq, state, x_all, pool, 9, jax.random.PRNGKey(0), prep, chunk_size=64)
  np.testing.assert_array_equal(out.indices, unl[np.argsort(table[unl])[:9]])
  sub = acq_lib.acquire(acq, state, x_all, pool, 4, jax.random.PRNGKey(1), prep, chunk_size=64,
                        subset=333)
  cand = sub.candidates
  assert len(cand) == 333 and not np.array_equal(cand, unl[:333])
  np.testing.assert_array_equal(sub.indices, cand[np.argsort(table[cand])[:4]])


def test_aral_scores_condition_the_encoder_on_the_classifiers_label():
  """ARAL §3.2: −S(μ(x, ŷ)) with ŷ = argmax C(x), one-hot. The fake encoder's latent spells
  (index, label it was given) and the sampler reads a table per (index, label), so a score
  with the true label, a soft label or a fixed class reads another entry."""
  n, c = 50, 3
  rng = np.random.default_rng(0)
  logits = rng.normal(0, 1, (n, c)).astype(np.float32)
  y_hat = logits.argmax(-1)
  assert len(set(y_hat)) == c
  table = rng.normal(0, 1, (n, c)).astype(np.float32)
  decode = lambda x: jnp.round(x[:, 0, 0, 0] * 255) * 256 + jnp.round(x[:, 0, 1, 0] * 255)
  def enc(v, x, y, **kw):
    onehot_ok = jnp.all(jnp.isclose(jnp.sum(y, -1), 1.0) & (jnp.max(y, -1) == 1.0))
    return jnp.stack([decode(x), jnp.argmax(y, -1).astype(jnp.float32),
                      onehot_ok.astype(jnp.float32) * jnp.ones(x.shape[0])], -1)
  smp = lambda v, z: jnp.where(z[:, 2] > 0, v["table"][z[:, 0].astype(jnp.int32),
                                                       z[:, 1].astype(jnp.int32)], jnp.nan)
  state = ModelState(
      apply_fn=lambda v, x, **kw: (v["logits"][decode(x).astype(jnp.int32)], {}),
      variables={"logits": jnp.asarray(logits)},
      aux={"encoder": {}, "sampler": {"table": jnp.asarray(table)}},
      aux_apply={"encoder": enc, "sampler": smp})
  prep = Preprocess(mean=(0.0,), std=(1.0,))
  x = prep.eval(jnp.asarray(_index_images(n)))
  got = np.asarray(acq_lib.ACQUISITIONS.get("aral_sampler")().score(state, x, None))
  np.testing.assert_array_equal(got, -table[np.arange(n), y_hat])


def test_sampler_acquisition_without_its_side_model_is_refused():
  state = ModelState(apply_fn=lambda v, x, **kw: (jnp.zeros((x.shape[0], 3)), {}), variables={})
  for kind, side in (("aral_sampler", "encoder"), ("vaal", "vae")):
    with pytest.raises(ALError, match=f"needs the '{side}' side model"):
      acq_lib.ACQUISITIONS.get(kind)().score(state, jnp.zeros((2, 1, 2, 1)), None)


# --- ARAL end to end -------------------------------------------------------------------------
def _tiny_aral(**overrides):
  c = get_config("aral", "digits", "cpu")
  cpu.apply_overrides(c, {
      "al.initial": 30, "al.budget": 10, "al.cycles": 2, "train.epochs": 2,
      "train.min_steps_per_epoch": 3, "train.batch_size": 16, "train.unlabeled_batch_size": 16,
      "model.kwargs.hidden": (32, 16), "objective_kwargs.latent_dim": 8,
      "objective_kwargs.mlp_hidden": (32,), "objective_kwargs.sampler_hidden": (32,),
      "eval.chunk_size": 256, "log_every": 1000})
  cpu.apply_overrides(c, overrides)
  return c


def test_aral_run_grids_classifier_head_and_resume(tmp_path):
  wd = str(tmp_path / "aral")
  learner = loop.ActiveLearner(_tiny_aral(), wd, log=quiet)
  rows = learner.run()
  assert [r["num_labeled"] for r in rows] == [30, 40]
  assert all(np.isfinite(r["test_accuracy"]) for r in rows)  # the loop also stops on NaN losses
  for k in (0, 1):  # one PNG grid of class-conditional samples per cycle
    png = os.path.join(wd, "artifacts", f"cycle_{k}_samples.png")
    with open(png, "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"

  # The classifier the harness evaluates is the discriminator's class head C = c_cl(D̃(x)).
  obj = learner.objective
  step = learner.workdir.latest_checkpoint()
  abstract = jax.eval_shape(lambda: obj.init(learner.k_init, learner.x_train[:1]))
  state, _ = learner.workdir.restore_checkpoint(step, abstract)
  learner.workdir.close()
  ms = obj.model_state(state)
  assert ms.variables["params"] is state.params["cls"] and "head" in state.params["cls"]
  x = learner.prep.eval(jnp.asarray(learner.dataset.x_test[:64]))
  direct = obj.model.apply({"params": state.params["cls"]}, x)[0]
  np.testing.assert_allclose(ms(x)[0], direct, rtol=1e-5, atol=1e-5)
  acc = float(np.mean(np.argmax(
      np.asarray(acq_lib.map_chunks(lambda s, x, r: s(x)[0], ms, learner.x_test_dev,
                                    np.arange(len(learner.dataset.y_test)), learner.prep, 256)),
      -1) == learner.dataset.y_test))
  assert abs(acc - rows[-1]["test_accuracy"]) < 1e-6
  # All four models (D = classifier + real/fake head, E, G, S) moved; each optimiser stepped
  # once per training step (Alg. 1: one update of each per iteration). Warm start carries the
  # weights into cycle 2, whose optimisers are fresh: 2 epochs × 3 steps.
  fresh = obj.init(jax.random.fold_in(learner.k_init, 1), learner.x_train[:1])
  for name, p_new, p_old in (("D", state.params, fresh.params),
                             *((k, state.aux[k]["params"], fresh.aux[k]["params"])
                               for k in ("enc", "gen", "smp"))):
    diff = jax.tree_util.tree_map(lambda a, b: float(jnp.max(jnp.abs(a - b))), p_new, p_old)
    assert all(d > 0 for d in jax.tree_util.tree_leaves(diff)), name
  assert int(state.step) == 6
  for k in ("enc", "gen", "smp"):
    counts = [int(a) for a in jax.tree_util.tree_leaves(state.aux[k]["opt_state"])
              if jnp.ndim(a) == 0 and jnp.issubdtype(a.dtype, jnp.integer)]
    assert counts and all(c == 6 for c in counts), k

  # Resume: drop the last cycle (as if killed during it) and continue; identical results.
  shutil.rmtree(os.path.join(wd, "checkpoints", "1"))
  with open(os.path.join(wd, "results.jsonl")) as f:
    first = f.readline()
  with open(os.path.join(wd, "results.jsonl"), "w") as f:
    f.write(first)
  # The same learner (its step is compiled already); test_loop covers fresh processes' resume.
  resumed = learner.run(resume=True)
  assert [r["test_accuracy"] for r in resumed] == [r["test_accuracy"] for r in rows]
  assert [r["num_labeled"] for r in resumed] == [30, 40]


# --- paper presets: shapes at 28×28×1 and 32×32×3 (traced, never compiled) -------------------
@pytest.mark.parametrize("method,dataset,shape", [
    ("aral", "mnist", (28, 28, 1)), ("aral", "cifar10", (32, 32, 3)),
    ("aral", "svhn", (32, 32, 3)), ("vaal", "cifar10", (32, 32, 3))])
def test_paper_presets_trace(method, dataset, shape):
  c = get_config(method, dataset, "paper")
  model = get_model(c.model.name, 10, **c.model.kwargs.to_dict())
  prep = Preprocess(mean=(0.5,) * shape[-1], std=(0.5,) * shape[-1])
  obj = OBJECTIVES.get(c.objective)(model=model, prep=prep, num_classes=10, optim_cfg=c.optim,
                                    epochs=c.train.epochs, **c.objective_kwargs.to_dict())
  key = jax.random.PRNGKey(0)
  state = jax.eval_shape(obj.init, key, jax.ShapeDtypeStruct((1,) + shape, jnp.uint8))
  b, bu = c.train.batch_size, c.train.unlabeled_batch_size
  lab = {"x": jax.ShapeDtypeStruct((b,) + shape, jnp.uint8),
         "y": jax.ShapeDtypeStruct((b,), jnp.int32),
         "mask": jax.ShapeDtypeStruct((b,), jnp.float32)}
  unl = {"x": jax.ShapeDtypeStruct((bu,) + shape, jnp.uint8)}
  new, metrics = jax.eval_shape(obj.train_step, state, lab, unl, key)
  assert jax.tree_util.tree_structure(new) == jax.tree_util.tree_structure(state)
  assert all(m.shape == () for m in metrics.values())
  ms = obj.model_state(state)
  x = jax.ShapeDtypeStruct((4,) + shape, jnp.float32)
  assert jax.eval_shape(lambda s, x: s(x)[0], ms, x).shape == (4, 10)
  acq = acq_lib.ACQUISITIONS.get(c.acquisition)()
  assert jax.eval_shape(lambda s, x: acq.score(s, x, key), ms, x).shape == (4,)
  if method == "aral":
    z = jnp.zeros((3, 100))
    assert jax.eval_shape(obj.generate, state, z, jnp.eye(10)[:3]).shape == (3,) + shape
    if dataset == "cifar10":  # 9-layer D, latent 100, Table: §4.1
      assert c.objective_kwargs.to_dict().get("arch") == "conv" and c.model.name == "gan_cnn"


def test_aral_bad_settings_are_refused():
  c = _tiny_aral(**{"objective_kwargs.encoder_gan": "sideways"})
  with pytest.raises(ALError, match="encoder_gan"):
    loop.ActiveLearner(c, log=quiet)


def test_loss_helpers_exact_values():
  from al_jax.objectives.losses import bce_logits, gaussian_kl, mse
  mu = jnp.array([[0.0, 0.0], [1.0, -2.0]])
  logvar = jnp.array([[0.0, 0.0], [jnp.log(4.0), 0.0]])
  # KL(N(μ, σ²) ‖ N(0, 1)) = ½ Σ (σ² + μ² − 1 − log σ²)
  np.testing.assert_allclose(gaussian_kl(mu, logvar),
                             [0.0, 0.5 * (4 + 1 - 1 - np.log(4)) + 0.5 * 4], rtol=1e-6)
  np.testing.assert_allclose(bce_logits(jnp.array([0.0, 2.0]), 1.0),
                             [np.log(2), np.log1p(np.exp(-2))], rtol=1e-6)
  np.testing.assert_allclose(bce_logits(jnp.array([2.0]), 0.0), [np.log1p(np.exp(2))], rtol=1e-6)
  np.testing.assert_allclose(mse(jnp.ones((2, 2, 2, 1)), jnp.zeros((2, 2, 2, 1)).at[1].set(3)),
                             [1.0, 4.0])
