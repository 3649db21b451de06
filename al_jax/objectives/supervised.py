"""Supervised objective: cross-entropy on the labeled set only."""

import jax
import jax.numpy as jnp

from al_jax.objectives.base import OBJECTIVES, Objective, cross_entropy, masked_mean


@OBJECTIVES.register("supervised")
class Supervised(Objective):
  """Plain cross-entropy training of the task classifier (every baseline's objective)."""
  name = "supervised"

  def train_step(self, state, labeled, unlabeled, rng):
    del unlabeled
    k_aug, k_drop = jax.random.split(rng)
    x = self.prep.train(k_aug, labeled["x"])

    def loss_fn(params):
      logits, _, stats = self.forward_train(params, state.batch_stats, x, k_drop)
      loss = masked_mean(cross_entropy(logits, labeled["y"]), labeled["mask"])
      return loss, (logits, stats)

    (loss, (logits, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    state = state.apply_gradients(grads=grads, batch_stats=stats)
    acc = masked_mean((logits.argmax(-1) == labeled["y"]).astype(jnp.float32), labeled["mask"])
    return state, {"loss": loss, "accuracy": acc}
