"""The pure GAN train step: n_critic discriminator updates and one generator update, in the
order the task names (`task.g_first`)."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import optax

from gan_jax import images, parallel, precision
from gan_jax.state import GANState

IMAGE_KEYS = ("image", "a", "b")  # batch entries that are images: uint8 in, float [-1, 1] inside


def make_train_step(task, g_tx: optax.GradientTransformation, d_tx: optax.GradientTransformation,
                    config: ml_collections.ConfigDict) -> Callable:
    """step(state, batch) -> (state, metrics), per device; wrap with `parallel.data_parallel`.

    batch: {'image': uint8 (n_critic, B_local, H, W, C), optional 'label': (n_critic, B_local)};
    image-to-image tasks: {'a', 'b'} uint8 images of that shape (every entry in IMAGE_KEYS is
    turned into float [-1, 1] here).
    Randomness: fold_in(state.key, step), then fold_in(critic iteration) and the global example
    index, so it is a pure function of (seed, step, example) whatever the device count. The G
    step draws train.g_batch_size fakes (default batch_size), keyed by their global index too.
    Phases (stylegan2-ada-pytorch training/training_loop.py): D's (the n_critic main updates, then
    with a separate lazy R1, task.separate_r1, a D update on task.r1_loss with the same optimizer
    on steps s with s % r1_every == 0: NVlabs' Dmain, Dreg) and G's (the main update, then with
    task.g_reg_every, StyleGAN2's path length, a G update on task.g_reg_loss with the same
    optimizer on steps s with s % g_reg_every == 0: Gmain, Greg). task.g_first (StyleGAN2, as
    NVlabs) runs G's phases first, so D's fakes come from the updated G; otherwise D's run first
    and G is judged by the updated D. Every phase draws its own keys (its own z and labels, as
    NVlabs' all_gen_z); critic iteration i reads batch[i], the other phases batch[-1] (with
    n_critic 1, as NVlabs, every phase reads the same real images).
    Each D step writes back what task.d_step_writes names, the G step what task.g_step_writes
    names and the G regulariser what task.g_reg_writes names (`write_back`), so collections that
    one phase writes (G's d_step_g_collections, the task's state) carry into the next phases and
    from step to step.
    On steps where task.resets_optimizers(step), both optimizers start from a fresh init.
    Each loss is multiplied by its optimizer's loss scale when it has one (float16:
    `precision.dynamic_loss_scale`, which unscales the gradients and skips non-finite updates).

    metrics['params_finite'] is 1 when every updated param is finite. With
    train.on_nonfinite='skip', a step whose losses or updated params are non-finite is not applied:
    the returned state is the input state with step + 1 and skipped + 1.
    """
    n_critic = config.train.n_critic
    batch_size = config.train.batch_size
    g_batch_size = config.train.g_batch_size or batch_size
    clip_value = config.loss.clip_value
    ema_decay, ema_start = config.ema.decay, config.ema.start_step
    skip_nonfinite = config.train.on_nonfinite == "skip"

    def train_step(state: GANState, batch: dict) -> tuple[GANState, dict]:
        batch = {k: images.to_float(v) if k in IMAGE_KEYS else v for k, v in batch.items()}
        local_batch = next(iter(batch.values())).shape[1]
        step_key = jax.random.fold_in(state.key, state.step)
        reset = task.resets_optimizers(state.step)
        g_opt_state, d_opt_state = jax.tree.map(
            lambda fresh, old: jnp.where(reset, fresh, old),
            (g_tx.init(state.g_params), d_tx.init(state.d_params)),
            (state.g_opt_state, state.d_opt_state))

        def apply_d(d_params, d_opt_state, grads):
            updates, d_opt_state = d_tx.update(grads, d_opt_state, d_params)
            d_params = optax.apply_updates(d_params, updates)
            if clip_value:
                d_params = jax.tree.map(lambda p: jnp.clip(p, -clip_value, clip_value), d_params)
            return d_params, d_opt_state

        def update_d(d_params, d_opt_state, g_params, held):
            """NVlabs' Dmain (n_critic updates on fakes of g_params), then Dreg on its steps."""
            def critic_update(carry, inputs):
                d_params, d_opt_state, held = carry
                sub_batch, i = inputs
                keys = parallel.example_keys(jax.random.fold_in(step_key, i), local_batch)
                grads, (writes, metrics) = jax.grad(
                    precision.scaled_loss(task.discriminator_loss, d_opt_state), has_aux=True)(
                    parallel.per_device(d_params), held["d_state"], g_params, held["g_state"],
                    sub_batch, keys, state.step, held["task_state"])
                grads = parallel.mean_over_devices(grads)
                d_params, d_opt_state = apply_d(d_params, d_opt_state, grads)
                return (d_params, d_opt_state,
                        write_back(held, writes, task.d_step_writes, "discriminator_loss")), metrics

            (d_params, d_opt_state, held), d_metrics = jax.lax.scan(
                critic_update, (d_params, d_opt_state, held), (batch, jnp.arange(n_critic)))

            if task.separate_r1:  # lazy R1 as its own D update (NVlabs' Dreg phase)
                def regularize(carry):
                    d_params, d_opt_state = carry
                    keys = parallel.example_keys(jax.random.fold_in(step_key, n_critic + 1),
                                                 local_batch)
                    grads, r1_metrics = jax.grad(precision.scaled_loss(task.r1_loss, d_opt_state),
                                                 has_aux=True)(
                        parallel.per_device(d_params), held["d_state"], last_batch, keys,
                        state.step, held["task_state"])
                    grads, r1_metrics = parallel.mean_over_devices((grads, r1_metrics))
                    return apply_d(d_params, d_opt_state, grads), r1_metrics["r1"]

                # on steps s with s % r1_every == 0, as the folded mode (see tasks/image_gan.py)
                (d_params, d_opt_state), r1 = jax.lax.cond(
                    state.step % task.r1_every == 0, regularize,
                    lambda carry: (carry, jnp.zeros((), jnp.float32)), (d_params, d_opt_state))
                d_metrics = {**d_metrics, "r1": jnp.broadcast_to(r1, (n_critic,))}
            return d_params, d_opt_state, held, d_metrics

        def update_g(g_params, g_opt_state, d_params, held):
            """NVlabs' Gmain (judged by d_params), then Greg on its steps."""
            keys = parallel.example_keys(jax.random.fold_in(step_key, n_critic),
                                         local_batch * g_batch_size // batch_size)
            grads, (writes, g_metrics) = jax.grad(
                precision.scaled_loss(task.generator_loss, g_opt_state), has_aux=True)(
                parallel.per_device(g_params), held["g_state"], d_params, held["d_state"],
                last_batch, keys, state.step, held["task_state"])
            grads = parallel.mean_over_devices(grads)
            held = write_back(held, writes, task.g_step_writes, "generator_loss")
            updates, g_opt_state = g_tx.update(grads, g_opt_state, g_params)
            g_params = optax.apply_updates(g_params, updates)

            if task.g_reg_every:  # a lazy G regulariser as its own G update (NVlabs' Greg phase)
                def regularize_g(carry):
                    g_params, g_opt_state, held = carry
                    keys = parallel.example_keys(jax.random.fold_in(step_key, n_critic + 2),
                                                 local_batch * g_batch_size // batch_size)
                    grads, (writes, reg_metrics) = jax.grad(
                        precision.scaled_loss(task.g_reg_loss, g_opt_state), has_aux=True)(
                        parallel.per_device(g_params), held["g_state"], keys, state.step,
                        held["task_state"])
                    grads, reg_metrics = parallel.mean_over_devices((grads, reg_metrics))
                    updates, g_opt_state = g_tx.update(grads, g_opt_state, g_params)
                    held = write_back(held, writes, task.g_reg_writes, "g_reg_loss")
                    return (optax.apply_updates(g_params, updates), g_opt_state, held), reg_metrics

                carry = (g_params, g_opt_state, held)
                no_metrics = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype),
                                          jax.eval_shape(regularize_g, carry)[1])
                # on steps s with s % g_reg_every == 0, as lazy R1
                (g_params, g_opt_state, held), reg_metrics = jax.lax.cond(
                    state.step % task.g_reg_every == 0, regularize_g,
                    lambda carry: (carry, no_metrics), carry)
                g_metrics = {**g_metrics, **reg_metrics}
            return g_params, g_opt_state, held, g_metrics

        held = dict(g_state=state.g_state, d_state=state.d_state, task_state=state.task_state)
        last_batch = jax.tree.map(lambda x: x[-1], batch)
        if task.g_first:  # NVlabs' phase order: Gmain, Greg, then Dmain, Dreg on the new G
            g_params, g_opt_state, held, g_metrics = update_g(state.g_params, g_opt_state,
                                                              state.d_params, held)
            d_params, d_opt_state, held, d_metrics = update_d(state.d_params, d_opt_state,
                                                              g_params, held)
        else:
            d_params, d_opt_state, held, d_metrics = update_d(state.d_params, d_opt_state,
                                                              state.g_params, held)
            g_params, g_opt_state, held, g_metrics = update_g(state.g_params, g_opt_state,
                                                              d_params, held)
        g_state = held["g_state"]

        ema_params, ema_state = state.ema_params, state.ema_state
        if ema_params is not None:
            decay = jnp.where(state.step >= ema_start, ema_decay, 0.0)
            ema_params = ema_update(g_params, ema_params, decay)
            ema_state = (ema_update(g_state, ema_state, decay)
                         if task.ema_collections == "average" else g_state)

        d_metrics, g_metrics = parallel.mean_over_devices((d_metrics, g_metrics))
        metrics = {**jax.tree.map(lambda m: m[-1], d_metrics), **g_metrics}
        params_finite = precision.all_finite((g_params, d_params, ema_params))
        new_state = state.replace(
            step=state.step + 1, g_params=g_params, d_params=d_params, g_state=g_state,
            d_state=held["d_state"], task_state=held["task_state"], g_opt_state=g_opt_state,
            d_opt_state=d_opt_state, ema_params=ema_params, ema_state=ema_state)
        if skip_nonfinite:
            ok = params_finite & precision.all_finite((d_metrics, g_metrics))
            kept = state.replace(step=state.step + 1, skipped=state.skipped + 1)
            new_state = jax.tree.map(lambda new, old: jnp.where(ok, new, old), new_state, kept)
        metrics.update(precision.loss_scale_metrics(new_state.g_opt_state, new_state.d_opt_state))
        metrics["params_finite"] = params_finite.astype(jnp.float32)
        metrics["skipped"] = new_state.skipped.astype(jnp.float32)
        return new_state, metrics

    return train_step


def write_back(held: dict, writes: dict, declared: tuple[str, ...], loss_name: str) -> dict:
    """`held` ({'g_state', 'd_state', 'task_state'}) with each write applied: 'field' replaces the
    field, 'field/collection' one collection of it. Written G and D collections are averaged over
    devices; the task's state is not (it is computed identically on every device). ValueError at
    trace time unless `writes` has exactly the `declared` names."""
    if sorted(writes) != sorted(declared):
        raise ValueError(f"task.{loss_name} wrote back {sorted(writes)} but the task declares "
                         f"{sorted(declared)}")
    held = dict(held)
    for name, value in writes.items():
        field, _, collection = name.partition("/")
        if field != "task_state":
            value = parallel.mean_over_devices(value)
        held[field] = {**held[field], collection: value} if collection else value
    return held


def ema_update(new, ema, decay: jax.Array):
    """decay * ema + (1 - decay) * new for every float leaf; integer leaves take `new`'s value.

    Applied to the generator's params and to its collections alike, as BigGAN-PyTorch's `ema`
    (utils.py) averages every state_dict entry (BatchNorm running mean/var, spectral-norm `u`) and
    copies `num_batches_tracked`: the EMA generator then samples with statistics of its own, not
    the live generator's. Averaged `u` vectors are fine: the power iteration normalises W^T u.
    """
    def update(n, e):
        if not jnp.issubdtype(n.dtype, jnp.inexact):
            return n
        return optax.incremental_update(n, e, 1.0 - decay)

    return jax.tree.map(update, new, ema)
