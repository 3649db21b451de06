"""Semantic mutants: does the test suite notice a wrong method?

Each row of `MUTANTS` breaks one term or rule of a paper (a loss sign, a reduction, a target,
an update order, a schedule, an EMA rate, a selection direction) by replacing an exact text
that occurs once in one file, and names the test(s) that must fail under it. The runner copies
the tracked files (`git ls-files`) to a temporary directory once, then for each row applies the
replacement to the copy, runs the row's tests in a fresh process
(`python -m pytest -q -x -n 0 -p no:cacheprovider <ids>`, cwd = the copy, this environment, so
JAX's persistent compilation cache is shared) and restores the file.

  python -m experiments.mutants                       # every row (tens of minutes on 2 cores)
  python -m experiments.mutants --files=al_jax/objectives/fixmatch.py   # rows of changed files
  python -m experiments.mutants --only=fixmatch_no_step_cosine,mt_no_ema_cap
  python -m experiments.mutants --list                # the table, nothing run

A row is "killed" when its tests fail (pytest exit 1), "survived" when they pass, "no longer
applies" when its text no longer occurs exactly once (the code moved: re-anchor the row), and
"error" for any other pytest exit (a test id that is gone, a collection error). The command
exits 1 unless every selected row is killed. `--baseline` first runs all selected rows' tests
on the unmutated copy (they must pass, else a "kill" means nothing).

Anchors are the shortest distinctive text of the loss or selection line itself, so a row
follows its line through refactors of the code around it.
"""

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time

Mutant = collections.namedtuple("Mutant", "name file text replacement tests breaks")

_OBJ = "al_jax/objectives/"
_ACQ = "al_jax/acquisition/"
_SEM = "tests/test_semantics.py::"
_TC = "tests/test_tod_crtcl.py::"
_LPL = "tests/test_lplgrad.py::"
_SSL = "tests/test_ssl.py::"
_GEN = "tests/test_generative_ssl_behaviour.py::"
_PIN = "tests/test_pinned_behaviour.py::"
_CONF = "tests/test_acquisition_conformance.py::"

# name, file, exact text (once in the file), replacement, tests that must fail, what it breaks.
MUTANTS = [
    # --- CrtCl (§III.D, Alg. 1, Eqs. 1–5; §III.E) -------------------------------------------
    Mutant("crtcl_cc_sum_sign", _OBJ + "critic.py",
           "return jnp.sum(c * inc) - jnp.sum(c * cor)",
           "return jnp.sum(c * cor) - jnp.sum(c * inc)",
           (_TC + "test_critic_loss_is_eq4", _SEM + "test_critic_step_raises_the_critic_gap_and_stays_clipped"),
           "Eq. 4 sign: the critic must score correct predictions high (Σ_inc C − Σ_cor C)"),
    Mutant("crtcl_cc_sum_as_mean", _OBJ + "critic.py",
           '  if reduction == "sum":\n    return jnp.sum(c * inc)',
           '  if reduction == "sum_":\n    return jnp.sum(c * inc)',
           (_TC + "test_critic_loss_is_eq4",),
           "Eq. 4 reduction: sums over the batch (not the per-set means of Eq. 3)"),
    Mutant("crtcl_correct_target", _OBJ + "critic.py",
           "correct = (logits.argmax(-1) == y).astype(logits.dtype)",
           "correct = (logits.argmax(-1) != y).astype(logits.dtype)",
           (_SEM + "test_critic_step_raises_the_critic_gap_and_stays_clipped",),
           "Eq. 4 target: 'correct' is argmax F(x) = y"),
    Mutant("crtcl_gen_sign", _OBJ + "critic.py",
           "return -self.gamma * jnp.mean(c_u), u_stats",
           "return self.gamma * jnp.mean(c_u), u_stats",
           (_SEM + "test_generator_step_raises_the_critic_score_on_unlabeled_data",),
           "Eq. 5 sign: L_CG = −γ·C, the classifier moves towards what the critic calls correct"),
    Mutant("crtcl_gen_sum", _OBJ + "critic.py",
           "return -self.gamma * jnp.mean(c_u), u_stats",
           "return -self.gamma * jnp.sum(c_u), u_stats",
           (_SEM + "test_generator_step_is_one_plain_gradient_step_and_L_CG_is_a_batch_mean",),
           "Eq. 5 reduction: γ weighs the mean critic score over the unlabeled batch"),
    Mutant("crtcl_gen_features_not_detached", _OBJ + "critic.py",
           'c_u = self.critic.apply({"params": critic_params}, jax.lax.stop_gradient(stages), img,',
           'c_u = self.critic.apply({"params": critic_params}, stages, img,',
           (_TC + "test_generator_loss_reaches_the_classifier_only_through_the_probabilities",),
           "§V.A: L_CG reaches the classifier only through its output probabilities"),
    Mutant("crtcl_gen_step_through_optimizer", _OBJ + "critic.py",
           'if self.generator_step == "sequential":',
           'if self.generator_step == "sequential_":',
           (_SEM + "test_generator_step_is_one_plain_gradient_step_and_L_CG_is_a_batch_mean",),
           "Alg. 1 line 14: θ ← θ − η∇L_CG is a plain step after the CE step"),
    Mutant("crtcl_gen_never_stops", _OBJ + "critic.py",
           "on = self.generator_active(state.epoch)",
           "on = jnp.asarray(True)",
           (_TC + "test_generator_step_stops_at_E_prime_and_metrics_are_finite",),
           "Alg. 1 line 12: L_CG only while epoch < E'"),
    Mutant("crtcl_select_highest_score", _ACQ + "critic.py",
           "return -state.aux_apply[\"critic\"](state.aux[\"critic\"], x, logits, feats)",
           "return state.aux_apply[\"critic\"](state.aux[\"critic\"], x, logits, feats)",
           (_TC + "test_critic_acquisition_is_minus_the_critic_score",),
           "§III.E: query the samples with the lowest critic score"),
    # --- TOD (Eqs. 5–9) ---------------------------------------------------------------------
    Mutant("tod_cod_against_current_model", _ACQ + "tod.py",
           "return state.apply_fn(state.prev_variables, x)[0]",
           "return state.apply_fn(state.variables, x)[0]",
           (_TC + "test_cod_equals_direct_computation_from_two_saved_parameter_sets",),
           "Eq. 5: COD compares w_c with the previous cycle's w_{c−1}"),
    Mutant("tod_cod_lowest_first", _ACQ + "tod.py",
           "return jnp.linalg.norm(now - then, axis=-1)",
           "return -jnp.linalg.norm(now - then, axis=-1)",
           (_TC + "test_cod_equals_direct_computation_from_two_saved_parameter_sets",),
           "Eq. 5: the largest output discrepancy is queried"),
    Mutant("tod_consistency_sign", _OBJ + "tod.py",
           "return ce + self.lam * unsup, (ce, unsup, logits, stats)",
           "return ce - self.lam * unsup, (ce, unsup, logits, stats)",
           (_SEM + "test_tod_step_lowers_the_consistency_to_the_ema_model",),
           "Eq. 9: L_S + λ·L_U, the consistency is minimised"),
    Mutant("tod_consistency_mean_over_classes", _OBJ + "tod.py",
           "unsup = jnp.mean(jnp.sum(jnp.square(tod_output(u_logits, self.output) - t_out), -1))",
           "unsup = jnp.mean(jnp.mean(jnp.square(tod_output(u_logits, self.output) - t_out), -1))",
           (_PIN + "test_tod_eq7_scale_sum_over_classes_mean_over_batch_times_lambda",),
           "Eq. 7 reduction: squared L2 norm over classes (a sum), mean over the batch"),
    Mutant("tod_consistency_sum_over_batch", _OBJ + "tod.py",
           "unsup = jnp.mean(jnp.sum(jnp.square(tod_output(u_logits, self.output) - t_out), -1))",
           "unsup = jnp.sum(jnp.sum(jnp.square(tod_output(u_logits, self.output) - t_out), -1))",
           (_PIN + "test_tod_eq7_scale_sum_over_classes_mean_over_batch_times_lambda",),
           "Eq. 7 reduction: mean over the unlabeled batch"),
    Mutant("tod_unlabeled_eval_view", _OBJ + "tod.py",
           'xu = self.prep.train(k_uaug, unlabeled["x"])',
           'xu = self.prep.eval(unlabeled["x"])',
           (_PIN + "test_tod_unlabeled_batch_gets_the_training_augmentation",),
           "§4.3 / main_TOD.py: unlabeled batches get the training augmentation"),
    Mutant("tod_ema_decay_swapped", "al_jax/ema.py",
           "return jax.tree_util.tree_map(lambda e, p: decay * e + (1.0 - decay) * p, ema, new)",
           "return jax.tree_util.tree_map(lambda e, p: (1.0 - decay) * e + decay * p, ema, new)",
           (_TC + "test_ema_decay_and_update",),
           "Eq. 6: w̃ ← α·w̃ + (1 − α)·w"),
    Mutant("tod_ema_no_warmup", _OBJ + "tod.py",
           "return ema_lib.warmup_decay(step, alpha)",
           "return alpha",
           (_TC + "test_ema_decay_and_update",),
           "EMA warm-up min(1 − 1/(t+1), α) (Mean Teacher, TOD code)"),
    Mutant("tod_ema_step_per_cycle", _OBJ + "tod.py",
           'self.side_models = {"ema": SideModel(warm="all")}',
           'self.side_models = {"ema": SideModel(warm="weights")}',
           (_SEM + "test_tod_ema_warmup_continues_across_cycles",),
           "main_TOD.py: the EMA warm-up counts steps over the run, not per cycle"),
    Mutant("tod_no_lambda", _OBJ + "tod.py",
           "return ce + self.lam * unsup, (ce, unsup, logits, stats)",
           "return ce + unsup, (ce, unsup, logits, stats)",
           (_PIN + "test_tod_eq7_scale_sum_over_classes_mean_over_batch_times_lambda",),
           "Eq. 9: L_U weighted by λ"),
    # --- the loop and the presets ---------------------------------------------------------------
    Mutant("loop_no_warm_start", "al_jax/loop.py",
           "state = self.train(cycle, pool, prev_state)",
           "state = self.train(cycle, pool, None)",
           (_PIN + "test_loop_run_continues_the_model_across_cycles[lplgrad]",),
           "LPLgrad Alg. 1 line 1 / LL4AL code: the model continues across cycles in the loop"),
    Mutant("cpu_lplgrad_module_lr_decays", "experiments/configs/cpu.py",
           '"objective_kwargs.module_lr_decay": False}',
           '"objective_kwargs.module_lr_decay": True}',
           (_PIN + "test_cpu_preset_lplgrad_module_lr_stays_constant",),
           "LPLgrad code: the module's scheduler is never stepped"),
    Mutant("augment_crop_pad_ignored", "al_jax/data/augment.py",
           "pad = ds.crop_pad if crop_pad == -1 else int(crop_pad)",
           "pad = ds.crop_pad",
           (_PIN + "test_config_crop_and_flip_reach_preprocess",),
           "config → Preprocess: train.crop_pad (CrtCl §IV-A trains without crops)"),
    Mutant("augment_flip_setting_ignored", "al_jax/data/augment.py",
           'do_flip = ds.flip if flip == "dataset" else flip == "on"',
           "do_flip = ds.flip",
           (_PIN + "test_config_crop_and_flip_reach_preprocess",),
           "config → Preprocess: train.flip (TOD's code flips SVHN too)"),
    Mutant("randaugment_magnitude_up_to_m", "al_jax/data/randaugment.py",
           "v = numerics.randint(k_v, (), 1, m)",
           "v = numerics.randint(k_v, (), 1, m + 1)",
           (_PIN + "test_randaugment_magnitude_range_and_apply_probability",),
           "RandAugmentMC: v = np.random.randint(1, m), i.e. 1..m−1"),
    Mutant("randaugment_always_applied", "al_jax/data/randaugment.py",
           "img = jnp.where(numerics.bernoulli(k_apply), out, img)",
           "img = out",
           (_PIN + "test_randaugment_magnitude_range_and_apply_probability",),
           "RandAugmentMC: each chosen op is applied with probability 1/2"),
    # --- LL4AL / LPLgrad (Eqs. 1–4; §III-C) ------------------------------------------------
    Mutant("lpl_ranking_sign", _OBJ + "loss_pred.py",
           "per_pair = jax.nn.relu(margin - sign * dp)",
           "per_pair = jax.nn.relu(margin + sign * dp)",
           (_LPL + "test_ranking_loss_matches_public_code_and_handles_ties_and_mask",
            _SEM + "test_loss_prediction_step_raises_rank_agreement_with_the_true_losses"),
           "Eq. 2 sign: max(0, −1(l_i,l_j)·(l̂_i − l̂_j) + ξ)"),
    Mutant("lpl_pairs_by_position", _OBJ + "loss_pred.py",
           "r = jnp.sum(mask > 0).astype(jnp.int32)",
           "r = jnp.asarray(batch, jnp.int32)",
           (_LPL + "test_a_short_last_batch_pairs_its_real_samples_as_the_public_code_does",),
           "Eq. 2's pairs are formed among a padded batch's real samples (public flip(0))"),
    Mutant("lpl_ranking_no_margin", _OBJ + "loss_pred.py",
           "per_pair = jax.nn.relu(margin - sign * dp)",
           "per_pair = jax.nn.relu(-sign * dp)",
           (_LPL + "test_ranking_loss_matches_public_code_and_handles_ties_and_mask",),
           "Eq. 2: the margin ξ"),
    Mutant("lpl_ties_positive", _OBJ + "loss_pred.py",
           "sign = jnp.where(dt > 0, 1.0, -1.0)",
           "sign = jnp.where(dt >= 0, 1.0, -1.0)",
           (_LPL + "test_ranking_loss_matches_public_code_and_handles_ties_and_mask",),
           "Eq. 2: 1(l_i, l_j) = −1 on ties (LL4AL's 'otherwise')"),
    Mutant("lpl_ranking_sum", _OBJ + "loss_pred.py",
           "return jnp.sum(per_pair * valid) / jnp.maximum(jnp.sum(valid), 1.0)",
           "return jnp.sum(per_pair * valid)",
           (_LPL + "test_ranking_loss_matches_public_code_and_handles_ties_and_mask",),
           "Eq. 2 reduction: mean over the B/2 pairs"),
    Mutant("lpl_total_sign", _OBJ + "loss_pred.py",
           "total = ce_loss + self.weight * module_loss",
           "total = ce_loss - self.weight * module_loss",
           (_SEM + "test_loss_prediction_step_raises_rank_agreement_with_the_true_losses",),
           "Eq. 4: L = L_CE + λ·L_loss"),
    Mutant("lpl_never_detach", _OBJ + "loss_pred.py",
           "detach = state.epoch >= self.detach_epoch",
           "detach = state.epoch < 0",
           (_LPL + "test_module_gradient_stops_at_features_from_detach_epoch",),
           "LL4AL §4.1: the module's gradient stops at the features after the detach epoch"),
    Mutant("lpl_module_lr_ignores_flag", _OBJ + "loss_pred.py",
           'schedule="classifier" if self.module_lr_decay else "constant")}',
           'schedule="classifier" if True else "constant")}',
           (_LPL + "test_module_learning_rate_follows_schedule_or_not",
            _PIN + "test_cpu_preset_lplgrad_module_lr_stays_constant"),
           "LPLgrad code: the module's LR is never stepped (module_lr_decay=False)"),
    Mutant("lpl_module_not_warm_started", _OBJ + "side.py",
           'return {**fresh, "params": prev["params"], "batch_stats": prev["batch_stats"]}',
           'return fresh',
           (_SEM + "test_warm_started_cycle_starts_from_the_previous_final_state[ll4al]",),
           "LL4AL/LPLgrad code: the loss module continues across cycles"),
    Mutant("ll4al_select_lowest_predicted_loss", _ACQ + "loss_pred.py",
           'return state.aux_apply["loss_net"](state.aux["loss_net"], feats["stages"])',
           'return -state.aux_apply["loss_net"](state.aux["loss_net"], feats["stages"])',
           (_LPL + "test_loss_prediction_loss_decreases_and_predicted_loss_scores_with_the_module",),
           "LL4AL §3.1: the highest predicted loss is queried"),
    # --- Uncertainty baselines, BALD, core-set, EGL, entropy gradnorm, PT4AL --------------------
    Mutant("entropy_sign", "al_jax/outputs.py",
           "return -jnp.sum(jnp.exp(logp) * logp, -1)",
           "return jnp.sum(jnp.exp(logp) * logp, -1)",
           (_CONF + "test_entropy_scores_exact_on_fixed_logits",),
           "max-entropy: H = −Σ p log p, highest first"),
    Mutant("least_confidence_direction", _ACQ + "uncertainty.py",
           "return 1.0 - jax.nn.softmax(state(x)[0].astype(jnp.float32)).max(-1)",
           "return jax.nn.softmax(state(x)[0].astype(jnp.float32)).max(-1)",
           (_CONF + "test_entropy_scores_exact_on_fixed_logits",),
           "least confidence: 1 − max p, the least confident first"),
    Mutant("margin_direction", _ACQ + "uncertainty.py",
           "return -(top2[:, 0] - top2[:, 1])",
           "return top2[:, 0] - top2[:, 1]",
           (_CONF + "test_entropy_scores_exact_on_fixed_logits",),
           "margin: the smallest top-2 margin first"),
    Mutant("bald_sign", _ACQ + "bald.py",
           "return predictive_entropy - expected_entropy",
           "return expected_entropy - predictive_entropy",
           (_LPL + "test_bald_equals_explicit_monte_carlo_and_vanishes_without_dropout",),
           "BALD: H[mean p] − mean H[p]"),
    Mutant("coreset_nearest_first", _ACQ + "coreset.py",
           "i = jnp.argmax(jnp.where(valid, min_d, -jnp.inf))  # ties: the lowest row",
           "i = jnp.argmin(jnp.where(valid, min_d, jnp.inf))  # ties: the lowest row",
           (_LPL + "test_k_center_greedy_matches_brute_force",),
           "core-set Alg. 1: the candidate farthest from its nearest center"),
    Mutant("topk_lowest_first", _ACQ + "base.py",
           "order = np.lexsort((candidates, -scores))",
           "order = np.lexsort((candidates, scores))",
           (_CONF + "test_top_k_breaks_ties_by_index",),
           "every score-based acquisition queries the highest scores"),
    Mutant("egl_unweighted_classes", _ACQ + "gradnorm.py",
           "return jnp.sum(p * jax.vmap(per_class, out_axes=1)(jnp.arange(num_classes)), -1)",
           "return jnp.sum(jax.vmap(per_class, out_axes=1)(jnp.arange(num_classes)), -1)",
           (_LPL + "test_egl_equals_brute_force",),
           "EGL (CRC §4.2): Σ_c p(c|x)·‖∇CE(c)‖², the expectation under the model"),
    Mutant("ent_gradnorm_smallest_first", _ACQ + "gradnorm.py",
           "return factorised_entropy_grad_norms(state, x, self.norm)",
           "return -factorised_entropy_grad_norms(state, x, self.norm)",
           (_LPL + "test_entropy_gradnorm_equals_brute_force",),
           "LPLgrad Eqs. 7–9: the largest entropy-gradient norm is queried"),
    Mutant("pt4al_pretext_loss_ascending", _ACQ + "pt4al.py",
           "self._orders[cache_key] = (idx[np.lexsort((idx, -losses))], losses)",
           "self._orders[cache_key] = (idx[np.lexsort((idx, losses))], losses)",
           (_TC + "test_pt4al_selects_least_confident_points_of_the_next_batch_reproducibly",),
           "PT4AL: batches in descending pretext (rotation) loss"),
    Mutant("pt4al_most_confident_first", _ACQ + "pt4al.py",
           "return 1.0 - jax.nn.softmax(state(x)[0].astype(jnp.float32)).max(-1)",
           "return jax.nn.softmax(state(x)[0].astype(jnp.float32)).max(-1)",
           (_PIN + "test_pt4al_scores_least_confidence",),
           "PT4AL: top-1 confidence sampling, the least confident first"),
    # --- CRC (Eq. 9, Alg. 1, Prop. 2) -----------------------------------------------------------
    Mutant("crc_lowest_groups", _ACQ + "crc.py",
           "order = np.lexsort((np.arange(len(scores)), -scores))",
           "order = np.lexsort((np.arange(len(scores)), scores))",
           ("tests/test_crc.py::test_selection_is_the_q_over_g_highest_scoring_groups",),
           "Alg. 1: the Q/G groups with the largest λ⁺_min"),
    Mutant("crc_literal_lambda_plus", _ACQ + "crc.py",
           "return np.where(rank >= r_star, w[:, n - r_star], 0.0)",
           "return np.where(rank > 0, w[np.arange(len(w)), n - rank], 0.0)",
           ("tests/test_crc.py::test_literal_lambda_plus_ignores_duplicates_rank_aware_does_not",),
           "Prop. 2: rank-deficient (duplicate) groups score 0"),
    Mutant("crc_layers_all_default", _ACQ + "crc.py",
           'def __init__(self, group_size: int = 0, layers: str = "last",',
           'def __init__(self, group_size: int = 0, layers: str = "all",',
           (_PIN + "test_crc_default_kernel_is_the_last_layer",),
           "§3.3 Table 2: CRC's default eNTK is the last layer's"),
    # --- Mean Teacher (CRC Table 4) -------------------------------------------------------------
    Mutant("mt_no_rampup", _OBJ + "mean_teacher.py",
           "weight = self.consistency * sigmoid_rampup(step, self.rampup_steps)",
           "weight = self.consistency",
           (_PIN + "test_mean_teacher_consistency_weight_is_ramped_up",),
           "Laine & Aila ramp-up exp(−5(1 − t)²) on the consistency coefficient"),
    Mutant("mt_no_ema_cap", "al_jax/ema.py",
           "return jnp.minimum(1.0 - 1.0 / (t.astype(jnp.float32) + 1.0), alpha)",
           "return 1.0 - 1.0 / (t.astype(jnp.float32) + 1.0)",
           (_PIN + "test_mean_teacher_ema_decay_is_capped_after_step_1",),
           "Oliver et al. mt_config: teacher EMA decay min(1 − 1/(t+1), 0.95)"),
    Mutant("mt_consistency_sign", _OBJ + "mean_teacher.py",
           "return ce + weight * cons, (logits[:n_l], stats, ce, cons)",
           "return ce - weight * cons, (logits[:n_l], stats, ce, cons)",
           (_PIN + "test_mean_teacher_consistency_pulls_the_student_to_the_teacher",),
           "Mean Teacher: the consistency cost is minimised"),
    Mutant("mt_consistency_on_logits", _OBJ + "mean_teacher.py",
           "cons = jnp.mean(jnp.mean((jax.nn.softmax(logits[n_l:]) - t_prob) ** 2, -1))",
           "cons = jnp.mean(jnp.mean((logits[n_l:] - t_prob) ** 2, -1))",
           (_PIN + "test_mean_teacher_consistency_is_the_softmax_mse",),
           "Mean Teacher: squared distance between softmax outputs"),
    Mutant("mt_same_view", _OBJ + "mean_teacher.py",
           "x_teacher = self._view(k_t, x_raw)",
           "x_teacher = self._view(k_s, x_raw)",
           (_PIN + "test_mean_teacher_consistency_is_the_softmax_mse",),
           "Mean Teacher: student and teacher see independent augmentations"),
    # --- FixMatch (CRC Tables 5–6) --------------------------------------------------------------
    Mutant("fixmatch_no_step_cosine", _OBJ + "fixmatch.py",
           "state.opt_state, base * self.step_factor(state.step)))",
           "state.opt_state, base))",
           (_PIN + "test_fixmatch_update_uses_the_per_step_cosine_factor",),
           "FixMatch §4: lr × cos(7πk/16K) in every update"),
    Mutant("fixmatch_threshold_strict_below", _OBJ + "fixmatch.py",
           "mask = (conf >= threshold).astype(l_strong.dtype)",
           "mask = (conf < threshold).astype(l_strong.dtype)",
           (_GEN + "test_fixmatch_only_confident_points_train_the_strong_view_on_the_pseudo_label",),
           "FixMatch Eq. 4: only pseudo-labels with max q ≥ τ"),
    Mutant("fixmatch_weak_strong_swapped", _OBJ + "fixmatch.py",
           "l_x, l_w, l_s = logits[:n_l], logits[n_l:n_l + n_u], logits[n_l + n_u:]",
           "l_x, l_s, l_w = logits[:n_l], logits[n_l:n_l + n_u], logits[n_l + n_u:]",
           (_PIN + "test_fixmatch_pseudo_labels_come_from_the_weak_view",),
           "FixMatch: pseudo-labels from the weak view, trained on the strong one"),
    Mutant("fixmatch_lu_sign", _OBJ + "fixmatch.py",
           "return ce + self.lambda_u * lu, (l_x, stats, ce, lu, jnp.mean(mask))",
           "return ce - self.lambda_u * lu, (l_x, stats, ce, lu, jnp.mean(mask))",
           (_PIN + "test_fixmatch_pseudo_labels_come_from_the_weak_view",),
           "FixMatch: L = L_s + λ_u L_u"),
    Mutant("fixmatch_no_bn_ema", _OBJ + "fixmatch.py",
           '"batch_stats": (ema_lib.ema_update(ema["batch_stats"], stats, self.ema_decay)',
           '"batch_stats": (stats',
           (_PIN + "test_fixmatch_ema_averages_batchnorm_statistics",),
           "kekmodel (early version, CRC footnote): the EMA model averages BN statistics"),
    Mutant("fixmatch_ema_decay_swapped", "al_jax/ema.py",
           "return jax.tree_util.tree_map(lambda e, p: decay * e + (1.0 - decay) * p, ema, new)",
           "return jax.tree_util.tree_map(lambda e, p: (1.0 - decay) * e + decay * p, ema, new)",
           (_SSL + "test_fixmatch_threshold_mask_and_ema_model",),
           "FixMatch's evaluation EMA (decay 0.999) and the Mean Teacher EMA"),
    # --- VAAL (Sinha et al.; ARAL §3.1 Eqs. 1–4) ------------------------------------------------
    Mutant("vaal_kl_mean_default", _OBJ + "vaal.py",
           'num_vae_steps: int = 2, num_adv_steps: int = 1, kl_reduction: str = "sum",',
           'num_vae_steps: int = 2, num_adv_steps: int = 1, kl_reduction: str = "mean",',
           (_PIN + "test_vaal_kl_is_summed_over_the_batch",),
           "official vae_loss: β·KL summed over the batch"),
    Mutant("vaal_kl_sign", _OBJ + "losses.py",
           "return -0.5 * jnp.sum(1.0 + logvar - mu ** 2 - jnp.exp(logvar), -1)",
           "return 0.5 * jnp.sum(1.0 + logvar - mu ** 2 - jnp.exp(logvar), -1)",
           ("tests/test_aral.py::test_loss_helpers_exact_values",),
           "Eq. 1: KL(N(μ, σ²) ‖ N(0, I)) ≥ 0"),
    Mutant("vaal_sampler_targets_swapped", _OBJ + "vaal.py",
           "return (masked_mean(bce_logits(s(mu_l), 1.0), mask)\n              + jnp.mean(bce_logits(s(mu_u), 0.0)))",
           "return (masked_mean(bce_logits(s(mu_l), 0.0), mask)\n              + jnp.mean(bce_logits(s(mu_u), 1.0)))",
           (_GEN + "test_vaal_sampler_learns_labeled_high_unlabeled_low",),
           "Eq. 4: S learns labeled → 1, unlabeled → 0"),
    Mutant("vaal_encoder_helps_sampler", _OBJ + "vaal.py",
           "+ jnp.mean(bce_logits(self.sampler.apply({\"params\": s_p}, mu_u), 1.0)))",
           "+ jnp.mean(bce_logits(self.sampler.apply({\"params\": s_p}, mu_u), 0.0)))",
           (_GEN + "test_vaal_encoder_fools_a_frozen_sampler",),
           "Eq. 2: the encoder labels unlabeled latents 'labeled' to fool S"),
    Mutant("vaal_select_most_labeled", _ACQ + "adversarial.py",
           "return -s_fn(s_vars, mu).astype(jnp.float32)",
           "return s_fn(s_vars, mu).astype(jnp.float32)",
           ("tests/test_aral.py::test_selected_indices_are_the_lowest_sampler_scores",),
           "VAAL: query the points S rates least likely labeled"),
    # --- ARAL (Eqs. 5–13, Alg. 1) ---------------------------------------------------------------
    Mutant("aral_encoder_as_printed", _OBJ + "aral.py",
           'l_e = log_d_real if self.encoder_gan == "bigan" else -log_d_real',
           'l_e = -log_d_real',
           (_PIN + "test_aral_encoder_term_lowers_d_on_real_pairs",),
           "Eq. 10 with BiGAN's sign: E minimises +log D(x, E(x,y), y)"),
    Mutant("aral_generator_sign", _OBJ + "aral.py",
           'l_g = jnp.mean(jax.nn.log_sigmoid(-f["d_fake"]))',
           'l_g = -jnp.mean(jax.nn.log_sigmoid(-f["d_fake"]))',
           (_GEN + "test_aral_one_d_step_raises_and_one_eg_step_lowers_the_real_fake_gap",),
           "Eq. 7: G minimises log(1 − D(G(z,y), z, y))"),
    Mutant("aral_d_gan_fake_target", _OBJ + "aral.py",
           "+ jnp.mean(jax.nn.softplus(d_g)))",
           "+ jnp.mean(jax.nn.softplus(-d_g)))",
           (_PIN + "test_aral_d_step_calls_generated_pairs_fake",),
           "Eq. 8: D calls generated pairs fake, −log(1 − D)"),
    Mutant("aral_d_cls_wrong_labels", _OBJ + "aral.py",
           'cls = ce_l + jnp.mean(cross_entropy(logits_g, jnp.argmax(b["y_q"], -1)))',
           'cls = ce_l + jnp.mean(cross_entropy(logits_g, jnp.argmax(b["y_p"], -1)))',
           (_GEN + "test_aral_generated_images_are_classified_as_the_label_that_generated_them",),
           "Eq. 9: C learns the labels that generated its generated batch"),
    Mutant("aral_sampler_targets_swapped", _OBJ + "aral.py",
           "return (masked_mean(bce_logits(s(mu_l), 1.0), mask)\n              + jnp.mean(bce_logits(s(mu_u), 0.0)))",
           "return (masked_mean(bce_logits(s(mu_l), 0.0), mask)\n              + jnp.mean(bce_logits(s(mu_u), 1.0)))",
           (_GEN + "test_aral_sampler_learns_labeled_high_unlabeled_low",),
           "Eq. 13 (= Eq. 6): S learns labeled → 1, unlabeled → 0"),
    Mutant("aral_encoder_helps_sampler", _OBJ + "aral.py",
           "+ jnp.mean(bce_logits(s_apply(mu_u), 1.0)))",
           "+ jnp.mean(bce_logits(s_apply(mu_u), 0.0)))",
           (_GEN + "test_aral_encoder_adversarial_term_fools_the_sampler",),
           "Eq. 5 λ_adv term: E pushes S(μ_U) towards 'labeled'"),
    Mutant("aral_condition_on_constant_label", _OBJ + "aral.py",
           'y_u = jax.nn.one_hot(jnp.argmax(self.model.apply(cls_vars, x_u)[0], -1), k)',
           'y_u = jax.nn.one_hot(jnp.zeros(x_u.shape[0], jnp.int32), k)',
           (_PIN + "test_aral_conditions_unlabeled_images_on_the_classifier_argmax",),
           "§3.2: unlabeled images are conditioned on ŷ = argmax C(x)"),
    Mutant("aral_select_most_labeled", _ACQ + "adversarial.py",
           "return -s_fn(s_vars, enc_fn(enc_vars, x, y)).astype(jnp.float32)",
           "return s_fn(s_vars, enc_fn(enc_vars, x, y)).astype(jnp.float32)",
           ("tests/test_aral.py::test_selected_indices_are_the_lowest_sampler_scores",),
           "ARAL Alg. 1 line 2: query min S(E(x, C(x)))"),
    # --- configuration: settings by component, derived values, contracts, ranges ---------
    Mutant("config_detach_constant", "experiments/configs/cpu.py",
           '"derive.detach_fraction": 120 / 200, "objective_kwargs.hidden": 128,',
           '"objective_kwargs.detach_epoch": 24, "objective_kwargs.hidden": 128,',
           ("tests/test_config_resolution.py::test_derived_values_follow_the_command_line",),
           "LL4AL §4.1: detach after 120 of 200 epochs = 60% of the cycle's epochs"),
    Mutant("config_mu_frozen", "experiments/configs/__init__.py",
           "lambda c, r: int(round(r * c.train.batch_size))",
           "lambda c, r: int(round(r * 32))",
           ("tests/test_config_resolution.py::test_derived_values_follow_the_command_line",),
           "FixMatch's μ: the unlabeled batch is μ × the final labeled batch"),
    Mutant("config_rampup_frozen", "experiments/configs/__init__.py",
           "lambda c, f: int(f * c.train.epochs * c.train.min_steps_per_epoch)",
           "lambda c, f: int(f * 40 * c.train.min_steps_per_epoch)",
           ("tests/test_config_resolution.py::test_derived_values_follow_the_command_line",),
           "Mean Teacher's ramp-up: a fraction of the final cycle's steps"),
    Mutant("config_fixmatch_k_later_reading", "experiments/configs/__init__.py",
           "lambda c, f: int(round(f * c.train.epochs * c.train.min_steps_per_epoch)),",
           "lambda c, f: 2 ** 20,",
           ("tests/test_paper_presets.py::test_paper_preset_holds_the_papers_numbers",),
           "CRC footnote 2: FixMatch's K = epochs × steps of the early kekmodel version"),
    Mutant("config_ratio_overrides_explicit", "experiments/configs/__init__.py",
           "    if target_at > ratio_at:\n      continue",
           "    if False:\n      continue",
           ("tests/test_config_resolution.py::test_derived_values_follow_the_command_line",),
           "an explicit derived value set after its ratio wins"),
    Mutant("config_member_overridable", "experiments/configs/__init__.py",
           "  if clash:\n    raise ALError(",
           "  if False:\n    raise ALError(",
           ("tests/test_config_resolution.py::test_member_settings_win_and_conflicts_are_refused",),
           "a ledger member's defining settings cannot be overridden by --set"),
    Mutant("config_method_layer_by_name_only", "experiments/configs/__init__.py",
           'return canonical_method(obj, acq) or f"{obj}+{acq}", obj, acq',
           'return f"{obj}+{acq}", obj, acq',
           ("tests/test_config_resolution.py::test_every_method_resolves_the_same_spelled_both_ways",),
           "one pairing, one configuration: a spelled-out pairing is its named method"),
    Mutant("config_pairing_unchecked", "al_jax/methods.py",
           "missing = [n for n in need if n not in have]",
           "missing = []",
           ("tests/test_config_resolution.py::test_contracts_are_declared_and_checked",),
           "an acquisition's required side models must be provided by the objective"),
    Mutant("config_range_lower_bound_ignored", "experiments/configs/schema.py",
           "above = v > self.lo if self.lo_open else v >= self.lo",
           "above = True",
           ("tests/test_config_schema.py::test_the_command_line_exits_2_with_one_line",),
           "settings outside their declared range are refused"),
    Mutant("crtcl_protocol_cold_start", "experiments/configs/protocols.py",
           'cpu={"train.crop_pad": 0, "train.warm_start": True}),',
           'cpu={"train.crop_pad": 0}),',
           ("tests/test_config_resolution.py::test_the_crtcl_protocol_continues_every_members_model",),
           "CrtCl §IV-A follows TOD's code: every method of the comparison continues its model"),
    # --- ledger decisions ---------------------------------------------------------------
    Mutant("ledger_verdict_without_data", "experiments/claims.py",
           "  if why_not_measured(meas) is not None:\n    return NOT_MEASURED, []",
           "  if False:\n    return NOT_MEASURED, []",
           ("tests/test_reproduce.py::test_no_verdict_without_data",),
           "no parts, < 2 seeds or nothing checked is never a verdict"),
    Mutant("ledger_one_seed_decides", "experiments/claims.py",
           "MIN_SEEDS = 2",
           "MIN_SEEDS = 1",
           ("tests/test_reproduce.py::test_no_verdict_without_data",),
           "a verdict needs an interval: at least two seeds"),
    Mutant("ledger_premise_ignored", "experiments/claims.py",
           "  if meas.premise:\n    return PREMISE_NOT_MET, []",
           "  if False:\n    return PREMISE_NOT_MET, []",
           ("tests/test_ledger_premises.py::test_proposition_2_premise_is_checked_per_query_and_controls_are_shown",),
           "Prop. 2 is decided only where a full-rank non-degenerate choice exists"),
    Mutant("ledger_rank_short_ignored", "experiments/claims.py",
           'short += [f"{r} < {k}" for r, k in ranks if r < k]',
           'short += [f"{r} < {k}" for r, k in ranks if r < 0]',
           ("tests/test_ledger_premises.py::test_proposition_2_premise_is_checked_per_query_and_controls_are_shown",),
           "a query whose best kernel rank is below L + G fails the premise"),
    Mutant("ledger_floor_sign", "experiments/claims.py",
           "      if acc < probe:",
           "      if acc > probe:",
           ("tests/test_ledger_premises.py::test_a_member_below_the_linear_probe_floor_withholds_the_verdict",),
           "a member below the linear-probe floor withholds the verdict"),
    Mutant("ledger_confounds_ignored", "experiments/claims.py",
           "      if any(v != vals[0] for v in vals[1:]):",
           "      if False:",
           ("tests/test_ledger_premises.py::test_members_that_differ_beyond_what_is_compared_are_confounded",),
           "members differing beyond what is compared are confounded"),
    Mutant("ledger_no_fisher_z", "experiments/claims.py",
           '  if meas.transform == "fisher_z":\n    n = meas.points',
           '  if False:\n    n = meas.points',
           ("tests/test_ledger_premises.py::test_correlations_are_decided_on_fisher_z",),
           "correlations are decided on Fisher's z"),
    Mutant("ledger_bin_trend_sign", "experiments/claims.py",
           "return float(spearman(-np.arange(len(bins), dtype=float), bins))",
           "return float(spearman(np.arange(len(bins), dtype=float), bins))",
           ("tests/test_ledger_premises.py::test_tod_loss_bins_trend_reads_figure_5",),
           "TOD Fig. 5: bins in descending COD, loss rising with COD is ρ > 0"),
    Mutant("crc_rank_not_recorded", _ACQ + "crc.py",
           "ctx.info.update(kernel_size=int(len(ctx.labeled) + g), kernel_rank=int(ranks.max()))",
           "ctx.info.update(kernel_size=int(len(ctx.labeled) + g), kernel_rank=int(len(ctx.labeled) + g))",
           ("tests/test_crc.py::test_selection_records_the_kernel_rank_for_proposition_2s_premise",),
           "each CRC query records its best kernel rank (Prop. 2's premise)"),
    # --- robustness ---------------------------------------------------------------------
    Mutant("resume_no_fallback", "al_jax/results.py",
           "steps = sorted(self.manager.all_steps(), reverse=True)",
           "steps = sorted(self.manager.all_steps(), reverse=True)[:1]",
           ("tests/test_workdir_safety.py::test_damaged_newest_checkpoint_falls_back_to_the_one_before",),
           "a damaged newest checkpoint falls back to the one before"),
    Mutant("health_chance_never_flagged", "al_jax/health.py",
           "return bool(accs) and max(accs) <= chance_accuracy(num_classes, num_labeled)",
           "return False",
           ("tests/test_workdir_safety.py::test_train_accuracy_at_chance_flag",),
           "a cycle training at chance is flagged"),
    Mutant("health_divergence_never_flagged", "al_jax/health.py",
           "if not math.isfinite(last) or grew:",
           "if not math.isfinite(last):",
           ("tests/test_workdir_safety.py::test_side_loss_diverged_flag",),
           "a side model's loss that grows tenfold is flagged"),
    Mutant("health_critic_judged_by_size", "al_jax/health.py",
           "grew = key not in FINITENESS_ONLY and ref is not None",
           "grew = ref is not None",
           ("tests/test_workdir_safety.py::test_side_loss_diverged_flag",),
           "the critic's Wasserstein loss (falls to its clip box by design) is judged on "
           "finiteness alone"),
    Mutant("ledger_fisher_z_cap_at_one", "experiments/claims.py",
           "cap = 1 - 12 / (n * (n * n - 1)) if n >= 3 else 1 - 1e-12",
           "cap = 1 - 1e-12",
           ("tests/test_reproduce.py::test_a_perfect_ten_bin_trend_does_not_swamp_the_fisher_z_interval",),
           "a Spearman ρ over n points is capped below 1 at its largest attainable value"),
    Mutant("ledger_tod_topk_not_averaged", "experiments/claims.py",
           'return float(np.mean(list(report[scorer]["top_k"].values())))',
           'return float(max(report[scorer]["top_k"].values()))',
           ("tests/test_ledger_premises.py::test_tod_figure_6_topk_reads_the_recall_of_the_highest_losses",),
           "TOD Fig. 6: the top-k recall averaged over the recorded k"),
    Mutant("ece_correct_from_probs", "al_jax/metrics.py",
           '"ece": expected_calibration_error(probs, labels, num_bins, predicted),',
           '"ece": expected_calibration_error(probs, labels, num_bins),',
           ("tests/test_metrics.py::test_ece_and_accuracy_agree_on_which_predictions_are_correct",),
           "ECE and accuracy read the same predicted class"),
    Mutant("fixmatch_c10_preset_weight_decay", "experiments/configs/paper.py",
           '"train.early_stopping_patience": 50,\n    "optim.weight_decay": 0.0,',
           '"train.early_stopping_patience": 50,\n    "optim.weight_decay": 5e-4,',
           ("tests/test_paper_presets.py::test_paper_preset_holds_the_papers_numbers",),
           "CRC's early kekmodel FixMatch applies no weight decay (Tables 5–6 presets)"),
    Mutant("ledger_holm_at_one_sided_5pc", "experiments/claims.py",
           "HOLM_ALPHA = 0.025",
           "HOLM_ALPHA = 0.05",
           ("tests/test_reproduce.py::test_holm_runs_at_the_level_of_the_per_claim_interval",),
           "the family-wise level is that of the per-claim 95% interval"),
    Mutant("ledger_dod_unpaired_seeds", "experiments/claims.py",
           "    seeds = _seeds(runs, *labels)\n    paired = {l: {s: runs[l][s] for s in seeds} for l in labels}",
           "    paired = runs",
           ("tests/test_reproduce.py::test_q_claims_pair_seeds_across_all_members_and_check_their_premises",),
           "CRC's gain minus entropy's is paired by seed over all four members"),
    Mutant("ledger_q_claims_unchecked", "experiments/claims.py",
           "return _tag(stat, (a, b), {a: (cycle_a,), b: (cycle_b,)}, varies=(\"al.budget\", \"al.cycles\"))",
           "return _tag(stat, (), {a: (cycle_a,), b: (cycle_b,)}, labels=(a, b))",
           ("tests/test_reproduce.py::test_q_claims_pair_seeds_across_all_members_and_check_their_premises",),
           "the Q = 20 vs 100 claims check matched members and the floor at the cycles read"),
    Mutant("ledger_missing_floor_passes", "experiments/claims.py",
           "        out.append(f\"no linear-probe floor at {n} labels to check {m.label} against \"",
           "        continue\n        out.append(f\"no linear-probe floor at {n} labels to check {m.label} against \"",
           ("tests/test_reproduce.py::test_a_missing_floor_withholds_the_verdict",),
           "a label count without a linear-probe floor withholds the verdict"),
    Mutant("ledger_commits_not_named", "experiments/reproduce.py",
           "  if len(runs) < 2:",
           "  if True:",
           ("tests/test_reproduce.py::test_a_ledger_continued_across_commits_names_each_invocations_commit",
            "tests/test_reproduce.py::test_a_ledger_continued_on_another_machine_names_each_invocations_machine"),
           "a ledger continued across commits or machines names each invocation's"),
    Mutant("ledger_accelerators_not_named", "experiments/reproduce.py",
           '    if backend != "cpu":',
           "    if False:",
           ("tests/test_reproduce.py::test_the_header_names_the_accelerators_runs_ran_on",),
           "the ledger header names the accelerators its runs ran on"),
    Mutant("worker_thread_limits_late", "experiments/study.py",
           'with _environ(slot["env"]):',
           "with contextlib.nullcontext():",
           ("tests/test_study_workers.py::test_a_worker_starts_with_its_thread_limits_before_numpy_loads",),
           "a study worker starts with its thread limits (OpenBLAS sizes its pool at load)"),
    Mutant("crc_q20_group_size_q_over_10", "experiments/claims.py",
           'CRC_Q20 = _m("crc@q20", "crc", **_Q20, **{"derive.group_fraction": 1.0})',
           'CRC_Q20 = _m("crc@q20", "crc", **_Q20)',
           ("tests/test_reproduce.py::test_crc_ledger_members_use_table_4s_group_size",),
           "CRC Table 4: G = 20 at Q = 20 (not the CIFAR rule G = Q/10)"),
    Mutant("lone_run_in_study_process", "experiments/study.py",
           "if workers > 1 and todo:",
           "if workers > 1 and len(todo) > 1:",
           ("tests/test_study_workers.py::test_a_lone_remaining_run_runs_on_a_workers_cores",),
           "a resumed study's lone remaining run runs in a worker, not the study process"),
    Mutant("lone_run_gets_every_core", "experiments/study.py",
           "return worker_slots(workers, platform, devices, cpus)[:runs]",
           "return worker_slots(min(workers, runs), platform, devices, cpus)",
           ("tests/test_study_workers.py::test_a_lone_remaining_run_runs_on_a_workers_cores",),
           "the last runs of a study keep the cores of the requested worker layout"),
    Mutant("resume_keeps_committed_state", "al_jax/loop.py",
           "prev_state = parallel.uncommitted(prev_state)",
           "prev_state = prev_state",
           ("tests/test_loop.py::test_resume_with_warm_start_matches",),
           "a resumed run compiles its train step once, as a fresh run does"),
    # --- BADGE (Ash et al. 2020, Eq. 1 and Alg. 1) ----------------------------------------
    Mutant("badge_embedding_p_not_residual", _ACQ + "badge.py",
           "a = p - jax.nn.one_hot(y_hat, p.shape[-1], dtype=dtype)",
           "a = p",
           ("tests/test_badge.py::test_factors_are_the_cross_entropy_gradient_of_the_head_kernel_at_the_predicted_label",),
           "Eq. 1: the last layer's gradient at ŷ is (p − onehot(ŷ)) ⊗ h"),
    Mutant("badge_farthest_not_d2", _ACQ + "badge.py",
           "return min_d, avail, jax.random.categorical(key, logits)",
           "return min_d, avail, jnp.argmax(logits)",
           ("tests/test_badge.py::test_next_centres_are_drawn_in_proportion_to_squared_distance",),
           "Alg. 1: k-means++ seeding draws the next centre ∝ D², not the farthest point"),
    # --- the fidelity round's defaults -----------------------------------------------------
    Mutant("crtcl_clip_wgan_default", _OBJ + "critic.py",
           "stop_fraction: float = 0.65, clip: float = 0.1,",
           "stop_fraction: float = 0.65, clip: float = 0.01,",
           (_TC + "test_generator_step_moves_the_classifier_beyond_float32_rounding_at_the_default_clip",),
           "L_CG must move the classifier beyond float32 rounding at the default clip"),
    Mutant("fixmatch_k_default_later_version", _OBJ + "fixmatch.py",
           "cosine_7_16: bool = True, cosine_steps: int = -1,",
           "cosine_7_16: bool = True, cosine_steps: int = 2 ** 20,",
           (_GEN + "test_fixmatch_default_horizon_is_the_early_kekmodel_version",),
           "CRC footnote 2: the early kekmodel version's K = epochs × iterations"),
    Mutant("vaal_scores_in_inference_mode", _ACQ + "adversarial.py",
           "def __init__(self, vae_train_mode: bool = True, batch_size: int = 128, **kwargs):",
           "def __init__(self, vae_train_mode: bool = False, batch_size: int = 128, **kwargs):",
           (_GEN + "test_vaal_scores_with_train_mode_batch_statistics_by_default",),
           "official VAAL never calls vae.eval(): sampler scores use batch statistics"),
    Mutant("study_replaces_a_started_study", "experiments/study.py",
           "fresh = not sharded and not any_started()",
           "fresh = not sharded",
           ("tests/test_study_report.py::"
            "test_a_study_that_stopped_before_any_run_started_is_started_afresh",),
           "a study directory is started afresh only when none of its runs started"),
    Mutant("config_section_dict_replaces", "experiments/configs/__init__.py",
           '    for k, v in value.items():\n      assign(c, f"{key}.{k}", v)\n    return',
           '    node[leaf] = ml_collections.ConfigDict(value)\n    return',
           ("tests/test_config_schema.py::test_apply_overrides_merges_a_dict_into_a_section",),
           "a dict given for a config section sets its keys (the others keep their values)"),
    Mutant("pt4al_cpu_subset", "experiments/configs/cpu.py",
           '{"acquisition_kwargs.num_batches": 5, "al.subset": 0,',
           '{"acquisition_kwargs.num_batches": 5,',
           ("tests/test_config_resolution.py::"
            "test_pt4al_scores_its_whole_batch_and_continues_its_network_everywhere",),
           "PT4AL scores its whole pretext batch (main.py: no random subset) on the cpu preset"),
    Mutant("coreset_without_labeled_centres", "al_jax/acquisition/coreset.py",
           "labeled = ctx.embeddings(ctx.labeled) if len(ctx.labeled) else",
           "labeled = np.zeros((0, cand.shape[1])) if True else",
           ("tests/test_badge.py::test_coreset_selector_uses_labeled_centres_and_the_embedding",),
           "core-set's first centres are the labeled points (Sener & Savarese Alg. 1)"),
    Mutant("lpl_module_weight_dropped", "al_jax/objectives/loss_pred.py",
           "total = ce_loss + self.weight * module_loss",
           "total = ce_loss + module_loss",
           ("tests/test_lplgrad.py::test_the_module_loss_enters_the_total_with_its_weight",),
           "LPLgrad Eq. 4 / LL4AL: CE + λ · L_loss"),
    Mutant("crtcl_gen_no_gamma", "al_jax/objectives/critic.py",
           "return -self.gamma * jnp.mean(c_u), u_stats",
           "return -jnp.mean(c_u), u_stats",
           ("tests/test_semantics.py::"
            "test_generator_step_is_one_plain_gradient_step_and_L_CG_is_a_batch_mean",),
           "CrtCl Eq. 5: L_CG is weighted by γ"),
    Mutant("pt4al_pretext_loss_negated", "al_jax/acquisition/pt4al.py",
           "  return jnp.mean(ce, axis=0)\n",
           "  return -jnp.mean(ce, axis=0)\n",
           ("tests/test_tod_crtcl.py::test_rotations_and_rotation_loss",),
           "PT4AL's pretext loss is the rotation CE (batches ordered hardest first)"),
    Mutant("fixmatch_epoch_cosine_dropped", "al_jax/objectives/fixmatch.py",
           "lr *= max(0.0, math.cos(7.0 * math.pi * epoch / (16.0 * max(1, self.epochs))))",
           "lr *= 1.0",
           ("tests/test_ssl.py::test_fixmatch_threshold_mask_and_ema_model",),
           "FixMatch's cos(7πk/16K) decay, stepped per epoch on the cpu preset"),
    Mutant("diagnostics_bins_lowest_score_first", "al_jax/diagnostics.py",
           "order = np.lexsort((np.arange(n), -np.asarray(scores, np.float64)))",
           "order = np.lexsort((np.arange(n), np.asarray(scores, np.float64)))",
           ("tests/test_tod_crtcl.py::test_score_report_and_loss_estimation_on_known_values",),
           "TOD Fig. 5's bins run from the highest score down"),
    Mutant("diagnostics_least_confidence_as_max_p", "al_jax/diagnostics.py",
           "conf = 1.0 - 1.0 / np.exp(z - z.max(-1, keepdims=True)).sum(-1)",
           "conf = 1.0 / np.exp(z - z.max(-1, keepdims=True)).sum(-1)",
           ("tests/test_tod_crtcl.py::test_score_report_and_loss_estimation_on_known_values",),
           "the ledger's least-confidence reference column is 1 − max p"),
    Mutant("aral_labeled_ce_negated", "al_jax/objectives/aral.py",
           'cls = ce_l + jnp.mean(cross_entropy(logits_g, jnp.argmax(b["y_q"], -1)))',
           'cls = -ce_l + jnp.mean(cross_entropy(logits_g, jnp.argmax(b["y_q"], -1)))',
           ("tests/test_generative_ssl_behaviour.py::test_aral_d_steps_fit_the_labeled_batch",),
           "ARAL Eq. 9: D descends the labeled cross-entropy"),
    Mutant("map_chunks_same_key_per_chunk", "al_jax/acquisition/base.py",
           "                                         jax.random.fold_in(rng, k))))",
           "                                         rng)))",
           ("tests/test_acquisition_conformance.py::"
            "test_random_scores_are_fresh_in_every_chunk_and_selections_uniform",),
           "random scores: every chunk draws its own uniforms"),
    Mutant("vaal_encoder_labeled_target_0", "al_jax/objectives/vaal.py",
           'adv = (masked_mean(bce_logits(self.sampler.apply({"params": s_p}, mu_l), 1.0), mask)',
           'adv = (masked_mean(bce_logits(self.sampler.apply({"params": s_p}, mu_l), 0.0), mask)',
           ("tests/test_pinned_behaviour.py::test_vaal_vae_losses_are_eqs_1_and_2",),
           "VAAL Eq. 2: the encoder wants S to call labeled latents labeled too"),
    Mutant("vaal_beta_dropped", "al_jax/objectives/vaal.py",
           "+ self.beta * (kl(mu_l, lv_l, mask) + kl(mu_u, lv_u)))",
           "+ 0.0 * (kl(mu_l, lv_l, mask) + kl(mu_u, lv_u)))",
           ("tests/test_pinned_behaviour.py::test_vaal_vae_losses_are_eqs_1_and_2",),
           "VAAL Eq. 1: β·KL enters the transductive loss"),
    Mutant("vaal_reconstruction_negated", "al_jax/objectives/vaal.py",
           "trd = (masked_mean(mse(rec_l, x_l), mask) + jnp.mean(mse(rec_u, x_u))",
           "trd = (-masked_mean(mse(rec_l, x_l), mask) - jnp.mean(mse(rec_u, x_u))",
           ("tests/test_pinned_behaviour.py::test_vaal_vae_losses_are_eqs_1_and_2",),
           "VAAL Eq. 1: the VAE descends the reconstruction error"),
    Mutant("aral_encoder_labeled_target_0", "al_jax/objectives/aral.py",
           "adv = (masked_mean(bce_logits(s_apply(mu_l), 1.0), mask)",
           "adv = (masked_mean(bce_logits(s_apply(mu_l), 0.0), mask)",
           ("tests/test_generative_ssl_behaviour.py::"
            "test_aral_encoder_adversarial_term_fools_the_sampler",),
           "ARAL Eq. 5 (VAAL Eq. 2): E wants S to call labeled latents labeled too"),
    Mutant("aral_scores_with_soft_label", "al_jax/acquisition/adversarial.py",
           "y = jax.nn.one_hot(jnp.argmax(logits, -1), logits.shape[-1])",
           "y = jax.nn.softmax(logits, -1)",
           ("tests/test_aral.py::test_aral_scores_condition_the_encoder_on_the_classifiers_label",),
           "ARAL §3.2: E is conditioned on the one-hot ŷ = argmax C(x)"),
    Mutant("aral_feature_matching_negated", "al_jax/objectives/aral.py",
           'fm = jnp.mean((jnp.mean(f["h_u"], 0) - jnp.mean(f["h_g"], 0)) ** 2)',
           'fm = -jnp.mean((jnp.mean(f["h_u"], 0) - jnp.mean(f["h_g"], 0)) ** 2)',
           ("tests/test_generative_ssl_behaviour.py::test_aral_eg_steps_lower_feature_matching_and_the_transductive_loss",),
           "feature matching: G descends ‖E D̃(x_U) − E D̃(G)‖²"),
    Mutant("aral_reconstruction_negated", "al_jax/objectives/aral.py",
           "    trd = (masked_mean(mse(rec_l, x_l), mask) + jnp.mean(mse(rec_u, x_u))",
           "    trd = (-masked_mean(mse(rec_l, x_l), mask) - jnp.mean(mse(rec_u, x_u))",
           ("tests/test_generative_ssl_behaviour.py::test_aral_eg_steps_lower_feature_matching_and_the_transductive_loss",),
           "ARAL Eq. 5: E/G descend the reconstruction error"),
    Mutant("resnet_he_normal_default", "al_jax/models/resnet.py",
           '  weight_init: str = "pytorch_default"\n\n  def __post_init__(self):',
           '  weight_init: str = "he_normal"\n\n  def __post_init__(self):',
           ("tests/test_models.py::test_resnet_init_weight_std",),
           "the kuangliu ResNet of LL4AL/TOD/LPLgrad keeps PyTorch's default init"),
]


def select(mutants, only=None, files=None):
  """Rows named in `only` and/or of the files in `files` (both None: all)."""
  rows = list(mutants)
  if only:
    names = set(only)
    unknown = names - {m.name for m in rows}
    if unknown:
      raise SystemExit(f"unknown mutant(s): {', '.join(sorted(unknown))}")
    rows = [m for m in rows if m.name in names]
  if files:
    wanted = {os.path.normpath(f) for f in files}
    rows = [m for m in rows if os.path.normpath(m.file) in wanted]
  return rows


def copy_tracked(root: str, dest: str) -> None:
  """Copies the files `git ls-files` lists under `root` to `dest` (the working-tree text)."""
  out = subprocess.run(["git", "ls-files", "-z"], cwd=root, check=True, capture_output=True)
  for rel in out.stdout.decode().split("\0"):
    if not rel or not os.path.isfile(os.path.join(root, rel)):
      continue
    os.makedirs(os.path.dirname(os.path.join(dest, rel)) or dest, exist_ok=True)
    shutil.copy2(os.path.join(root, rel), os.path.join(dest, rel))


def run_tests(copy: str, tests, timeout: float) -> int:
  """pytest's exit code for `tests` run in `copy` (a fresh process, this environment)."""
  env = dict(os.environ)
  env["PYTHONPATH"] = copy  # the copy's packages, not the checkout's
  cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-n", "0", "-p", "no:cacheprovider",
         *tests]
  try:
    return subprocess.run(cmd, cwd=copy, env=env, capture_output=True, timeout=timeout).returncode
  except subprocess.TimeoutExpired:
    return -1


def run_mutant(copy: str, m: Mutant, timeout: float = 1800.0):
  """Applies `m` to the copy, runs its tests, restores the file: (status, seconds)."""
  t0 = time.time()
  path = os.path.join(copy, m.file)
  try:
    with open(path, encoding="utf-8") as f:
      original = f.read()
  except FileNotFoundError:
    return "no longer applies", 0.0
  if original.count(m.text) != 1:
    return "no longer applies", 0.0
  with open(path, "w", encoding="utf-8") as f:
    f.write(original.replace(m.text, m.replacement))
  try:
    rc = run_tests(copy, m.tests, timeout)
  finally:
    with open(path, "w", encoding="utf-8") as f:
      f.write(original)
  status = {0: "survived", 1: "killed"}.get(rc, f"error (pytest exit {rc})")
  return status, time.time() - t0


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--only", default="", help="comma-separated mutant names")
  p.add_argument("--files", default="", help="comma-separated files: only their mutants")
  p.add_argument("--list", action="store_true", help="print the table and exit")
  p.add_argument("--baseline", action="store_true",
                 help="first check the selected rows' tests pass on the unmutated copy")
  p.add_argument("--timeout", type=float, default=1800.0, help="seconds per mutant")
  p.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  a = p.parse_args(argv)
  split = lambda s: [v for v in s.split(",") if v]
  rows = select(MUTANTS, split(a.only), split(a.files))
  if a.list:
    for m in rows:
      print(f"{m.name:36s} {m.file:38s} {m.breaks}\n{'':36s} must fail: {' '.join(m.tests)}")
    print(f"{len(rows)} mutants")
    return 0
  t_all = time.time()
  counts = collections.Counter()
  with tempfile.TemporaryDirectory(prefix="al_jax_mutants_") as copy:
    copy_tracked(a.root, copy)
    if a.baseline:
      tests = sorted({t for m in rows for t in m.tests})
      t0 = time.time()
      rc = run_tests(copy, tests, a.timeout * max(1, len(rows)))
      print(f"baseline: {len(tests)} tests, pytest exit {rc} ({time.time() - t0:.0f} s)",
            flush=True)
      if rc != 0:
        print("the unmutated tests do not pass: fix them before reading kills")
        return 1
    print(f"{'mutant':36s} {'file':38s} {'result':22s} seconds", flush=True)
    for m in rows:
      status, secs = run_mutant(copy, m, a.timeout)
      counts["killed" if status == "killed" else "survived" if status == "survived"
             else "no longer applies" if status == "no longer applies" else "error"] += 1
      print(f"{m.name:36s} {m.file:38s} {status:22s} {secs:7.1f}", flush=True)
  total = time.time() - t_all
  summary = (f"{len(rows)} mutants: {counts['killed']} killed, {counts['survived']} survived, "
             f"{counts['no longer applies']} no longer apply")
  if counts["error"]:
    summary += f", {counts['error']} errors"
  print(f"{summary} ({total:.0f} s)")
  return 0 if counts["killed"] == len(rows) else 1


if __name__ == "__main__":
  sys.exit(main())
