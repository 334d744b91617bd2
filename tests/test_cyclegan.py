"""CycleGAN: the history pool, the loss weights, and the task in the data-parallel train step."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gan_jax import parallel
from gan_jax.checkpoint import Checkpoints
from gan_jax.configs import base, fashion_cyclegan, horse2zebra_cyclegan, monet2photo_cyclegan
from gan_jax.models.pix2pix import PatchGANDiscriminator, ResNetTranslator
from gan_jax.state import create_state
from gan_jax.tasks import build_task
from gan_jax.data.image_pairs import crop_flip_params
from gan_jax.tasks.cyclegan import CROP_A, CROP_B, CycleGANTask, empty_pool, query_pool
from gan_jax.train_step import make_train_step

SIZE = 3  # pool size of the hand-computed cases


def draws(key):
    """(coin: returns a stored image, slot) that `query_pool` draws from an example's key."""
    return (float(jax.random.uniform(jax.random.fold_in(key, 0))) > 0.5,
            int(jax.random.randint(jax.random.fold_in(key, 1), (), 0, SIZE)))


def keys_with(coins):
    """Example keys whose coins are `coins` (the first found among fold_in(key(0), i))."""
    found, i = [], 0
    for coin in coins:
        while draws(jax.random.fold_in(jax.random.key(0), i))[0] != coin:
            i += 1
        found.append(jax.random.fold_in(jax.random.key(0), i))
        i += 1
    return jnp.stack(found)


def images(*values):
    return jnp.asarray(values, jnp.float32).reshape(-1, 1, 1, 1)


def stored(pool):
    return pool["images"].reshape(-1).tolist(), int(pool["count"])


def test_pool_stores_and_returns_new_images_while_not_full():
    pool, out = query_pool(empty_pool(SIZE, (1, 1, 1)), images(1, 2), keys_with([True, True]))
    assert out.reshape(-1).tolist() == [1, 2]  # the coin does not matter before the pool is full
    assert stored(pool) == ([1, 2, 0], 2)


def test_pool_batch_larger_than_the_remaining_capacity():
    """Pool [1, 2, _]: 3 fills the last slot and is returned; then 4 (coin: stored image) swaps
    with the drawn slot and returns its image; 5 (coin: new image) passes, the pool unchanged."""
    keys = keys_with([False, True, False])
    pool = {"images": images(1, 2, 0), "count": jnp.int32(2)}
    pool, out = query_pool(pool, images(3, 4, 5), keys)
    slot = draws(keys[1])[1]
    expected_pool = [1, 2, 3]
    returned = expected_pool[slot]
    expected_pool[slot] = 4
    assert out.reshape(-1).tolist() == [3, returned, 5]
    assert stored(pool) == (expected_pool, 3)


def test_full_pool_follows_the_reference_rule_over_many_draws():
    """Against util/image_pool.py's loop, written out with the same draws."""
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(7), i))(jnp.arange(40))
    new = images(*range(10, 50))
    pool, out = query_pool({"images": images(1, 2, 3), "count": jnp.int32(3)}, new, keys)
    reference, returned = [1.0, 2.0, 3.0], []
    for value, key in zip(range(10, 50), keys):
        coin, slot = draws(key)
        if coin:
            returned.append(reference[slot])
            reference[slot] = float(value)
        else:
            returned.append(float(value))
    assert out.reshape(-1).tolist() == returned
    assert stored(pool) == (reference, 3)
    swaps = sum(r != v for r, v in zip(returned, range(10, 50)))
    assert 10 < swaps < 30  # both branches, about half each


def test_pool_of_size_zero_returns_the_images():
    pool, out = query_pool(empty_pool(0, (1, 1, 1)), images(1, 2), keys_with([True, True]))
    assert out.reshape(-1).tolist() == [1, 2] and pool["images"].shape == (0, 1, 1, 1)


# --- loss weights on networks simple enough to compute by hand -------------------------------

class Scale(nn.Module):
    """G(x) = w * x (w: 0.5 at init); `train` is ignored."""

    @nn.compact
    def __call__(self, x, train):
        return self.param("w", nn.initializers.constant(0.5), ()) * x


class Patches(nn.Module):
    """D(x) = v * x[..., 0] per pixel (v: 2 at init)."""

    @nn.compact
    def __call__(self, x, train):
        return self.param("v", nn.initializers.constant(2.0), ()) * x[..., 0]


def test_losses_weigh_cycle_identity_and_halve_d_by_hand():
    task = CycleGANTask(Scale(), Patches(), cycle_weight=10.0, identity_weight=0.5, pool_size=0)
    g_vars, d_vars = task.init(jax.random.key(0), (1, 2, 1))
    assert jax.tree.map(float, (g_vars, d_vars)) == (
        {"params": {"g_ab": {"w": 0.5}, "g_ba": {"w": 0.5}}},
        {"params": {"d_a": {"v": 2.0}, "d_b": {"v": 2.0}}})
    g = {"g_ab": {"w": jnp.float32(0.5)}, "g_ba": {"w": jnp.float32(-1.0)}}
    d = {"d_a": {"v": jnp.float32(2.0)}, "d_b": {"v": jnp.float32(3.0)}}
    a, b = np.array([0.2, -0.4]), np.array([0.6, 1.0])
    batch = {"a": jnp.asarray(a).reshape(1, 1, 2, 1), "b": jnp.asarray(b).reshape(1, 1, 2, 1)}
    keys = jax.random.split(jax.random.key(1), 1)
    mse = lambda x, t: np.mean((x - t) ** 2)
    l1 = lambda x, y: np.mean(np.abs(x - y))
    fake_b, fake_a = 0.5 * a, -1.0 * b
    gan = mse(3.0 * fake_b, 1) + mse(2.0 * fake_a, 1)
    cycle = l1(-1.0 * fake_b, a) + l1(0.5 * fake_a, b)
    identity = l1(0.5 * b, b) + l1(-1.0 * a, a)
    loss, (writes, metrics) = task.generator_loss(g, {}, d, {}, batch, keys, 0, {})
    np.testing.assert_allclose(loss, gan + 10 * cycle + 0.5 * 10 * identity, rtol=1e-6)
    np.testing.assert_allclose([metrics["g_gan"], metrics["cycle"], metrics["identity"]],
                               [gan, cycle, identity], rtol=1e-6)
    assert writes == {}
    no_identity = CycleGANTask(Scale(), Patches(), 10.0, 0.0, 0)
    loss0, (_, metrics0) = no_identity.generator_loss(g, {}, d, {}, batch, keys, 0, {})
    np.testing.assert_allclose(loss0, gan + 10 * cycle, rtol=1e-6)
    assert "identity" not in metrics0
    pools = task.init_task_state((1, 2, 1))
    run = jax.shard_map(lambda: task.discriminator_loss(d, {}, g, {}, batch, keys, 0, pools),
                        mesh=parallel.make_mesh(jax.devices()[:1]), in_specs=(),
                        out_specs=jax.sharding.PartitionSpec(), check_vma=False)
    loss, (writes, metrics) = run()
    d_a = 0.5 * (mse(2.0 * a, 1) + mse(2.0 * fake_a, 0))
    d_b = 0.5 * (mse(3.0 * b, 1) + mse(3.0 * fake_b, 0))
    np.testing.assert_allclose([loss, metrics["d_a"], metrics["d_b"]], [d_a + d_b, d_a, d_b],
                               rtol=1e-6)
    assert list(writes) == ["task_state"]


# --- crop and flip (junyanz data/base_dataset.py get_transform: resize_and_crop, flip) --------

def test_each_domain_is_cropped_and_flipped_from_its_own_key_stream():
    """Example i of A is cropped and flipped as crop_flip_params draws from fold_in(keys[i],
    CROP_A), of B from fold_in(keys[i], CROP_B): the same on a rerun, different across examples,
    and A's draws independent of B's (the domains are unpaired)."""
    task = CycleGANTask(Scale(), Patches(), crop_size=3, flip=True)
    x = jax.random.normal(jax.random.key(4), (16, 5, 5, 1))
    keys = jax.random.split(jax.random.key(5), 16)
    a, b = jax.jit(task.domains)({"a": x, "b": x}, keys)
    for out, purpose in ((a, CROP_A), (b, CROP_B)):
        drawn = [tuple(int(v) for v in crop_flip_params(jax.random.fold_in(k, purpose), 5, 5, 3))
                 for k in keys]
        for i, (top, left, flip) in enumerate(drawn):
            crop = np.asarray(x[i, top:top + 3, left:left + 3])
            np.testing.assert_array_equal(out[i], crop[:, ::-1] if flip else crop)
        assert len(set(drawn)) > 8 and {f for _, _, f in drawn} == {0, 1}
    assert sum(not np.array_equal(a[i], b[i]) for i in range(16)) > 8
    rerun = jax.jit(task.domains)({"a": x, "b": x}, keys)
    for first, second in zip((a, b), rerun):
        np.testing.assert_array_equal(first, second)


def test_no_crop_and_no_flip_leave_the_batch_untouched():
    """data.load_size 0 (or = resolution) and data.flip False: the step sees the batch itself, as
    before crop and flip existed (the offline Fashion recipe's training is unchanged)."""
    batch = {"a": jnp.ones((2, 4, 4, 1)), "b": jnp.zeros((2, 4, 4, 1))}
    keys = jax.random.split(jax.random.key(0), 2)
    for task in (CycleGANTask(Scale(), Patches()), CycleGANTask(Scale(), Patches(), crop_size=4)):
        a, b = task.domains(batch, keys)
        assert a is batch["a"] and b is batch["b"]
    task = build_task(fashion_cyclegan.get_config())
    assert (task.crop_size, task.flip) == (32, False)
    horse = build_task(horse2zebra_cyclegan.get_config())
    assert (horse.crop_size, horse.flip) == (256, True)


# --- the task in the data-parallel train step --------------------------------------------------

RES, CHANNELS, BATCH = 4, 1, 8
# The step tests use the hand-computable networks above: the pools, the all-gather and the
# write-backs are what they test, and XLA:CPU compiles them in seconds (the ResNet and PatchGAN
# train step takes minutes: test_resnet_and_patchgan_train, marked slow).
TINY = CycleGANTask(Scale(), Patches(), pool_size=16)
SGD = optax.sgd(0.1)


def step_config():
    config = base.get_config()
    config.train.batch_size = BATCH
    return config


def batches(steps, res):
    """The first `steps` batches of one fixed stream (batch i does not depend on `steps`)."""
    rng = np.random.default_rng(0)
    shape = (1, BATCH, res, res, CHANNELS)
    return [{k: rng.integers(0, 256, shape, np.uint8) for k in "ab"} for _ in range(steps)]


def train(devices, steps, state=None, task=TINY, tx=SGD, res=RES):
    """The CycleGAN state after `steps` train steps on `devices` (from `state`, or a new one)."""
    mesh = parallel.make_mesh(devices)
    if state is None:
        state = create_state(task, tx, tx, 0, (res, res, CHANNELS), use_ema=False)
    state = jax.device_put(state, parallel.replicated(mesh))
    step = parallel.data_parallel(make_train_step(task, tx, tx, step_config()), mesh,
                                  donate_state=False)
    start = int(state.step)
    for batch in batches(start + steps, res)[start:]:
        state, _ = step(state, parallel.put_batch(batch, mesh))
    return state


def host(state):
    return jax.tree.map(np.asarray,
                        jax.device_get(state.replace(key=jax.random.key_data(state.key))))


def assert_bitwise_equal(x, y):
    for p, q in zip(jax.tree.leaves(host(x)), jax.tree.leaves(host(y))):
        np.testing.assert_array_equal(p, q)


@pytest.fixture(scope="module")
def two_steps():
    return train(jax.devices()[:1], 2)


def test_train_step_fills_the_global_pool_and_is_deterministic(two_steps):
    assert int(two_steps.step) == 2
    assert {k: int(v["count"]) for k, v in two_steps.task_state.items()} == {"pool_a": 16,
                                                                             "pool_b": 16}
    assert set(two_steps.g_params) == {"g_ab", "g_ba"}
    assert set(two_steps.d_params) == {"d_a", "d_b"}
    assert two_steps.g_state == {} and two_steps.d_state == {}
    assert_bitwise_equal(two_steps, train(jax.devices()[:1], 2))


def test_eight_devices_match_one_device(two_steps):
    """One global pool: the same fakes in the same slots whatever the device count (one pool per
    device would hold each device's own fakes in other slots). Params and fakes agree to float
    rounding (8 local means, then pmean, sum in another order). SGD: Adam turns rounding noise in
    a zero gradient into a full step (the ResNet's conv biases before instance norm have exactly
    zero gradient), so Adam runs differ in those params by up to 2 lr."""
    eight = train(jax.devices()[:8], 2)
    assert float(np.abs(host(eight).task_state["pool_b"]["images"]).min()) > 0  # 16 fakes
    for x, y in zip(jax.tree.leaves(host(two_steps)), jax.tree.leaves(host(eight))):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)


def test_half_full_pool_round_trips_through_a_checkpoint_and_resumes_bitwise(tmp_path):
    one = train(jax.devices()[:1], 1)
    assert int(one.task_state["pool_a"]["count"]) == 8  # half of 16
    checkpoints = Checkpoints(tmp_path)
    checkpoints.save(one, {"config": "test"})
    checkpoints.close()
    checkpoints = Checkpoints(tmp_path)
    mesh = parallel.make_mesh(jax.devices()[:1])
    restored, _ = checkpoints.restore(jax.eval_shape(lambda: one), parallel.replicated(mesh))
    checkpoints.close()
    assert_bitwise_equal(restored, one)
    assert_bitwise_equal(train(jax.devices()[:1], 1, restored), train(jax.devices()[:1], 2))


def test_translate_both_directions():
    g_params = {"g_ab": {"w": jnp.float32(0.5)}, "g_ba": {"w": jnp.float32(-1.0)}}
    x = jax.random.uniform(jax.random.key(2), (2, RES, RES, CHANNELS), minval=-1, maxval=1)
    keys = jax.random.split(jax.random.key(3), 2)
    translate = jax.jit(TINY.translate, static_argnames="direction")
    np.testing.assert_array_equal(translate(g_params, {}, x, keys, direction="a2b"), 0.5 * x)
    np.testing.assert_array_equal(translate(g_params, {}, x, keys, direction="b2a"), -x)
    assert TINY.directions == ("a2b", "b2a") and TINY.image_to_image


@pytest.mark.slow
def test_resnet_and_patchgan_train_deterministically():
    """The configs' networks (tiny widths) through two Adam steps: finite, bitwise repeatable."""
    task = CycleGANTask(ResNetTranslator(out_channels=CHANNELS, ngf=4, n_blocks=1),
                        PatchGANDiscriminator(ndf=4, norm="instance", n_layers=1), pool_size=16)
    adam = optax.adam(2e-4, b1=0.5)
    runs = [train(jax.devices()[:1], 2, task=task, tx=adam, res=8) for _ in range(2)]
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(host(runs[0])))
    assert int(runs[0].task_state["pool_a"]["count"]) == 16
    assert_bitwise_equal(*runs)


# --- recipes -------------------------------------------------------------------------------------

CYCLEGAN = "junyanz/pytorch-CycleGAN-and-pix2pix options/train_options.py, models/cycle_gan_model.py"
PAPER_RECIPE = [  # key, value, source (options/base_options.py: ngf, ndf, netD, norm, batch)
    ("model.generator", "resnet_9blocks", "Zhu et al. 2017, Sec. 7.2 (9 blocks at 256 px)"),
    ("model.discriminator", "basic", CYCLEGAN), ("model.norm", "instance", CYCLEGAN),
    ("data.load_size", 286, "options/base_options.py load_size, data/base_dataset.py"),
    ("data.resolution", 256, "options/base_options.py crop_size"),
    ("data.flip", True, "options/base_options.py no_flip False"),
    ("model.ngf", 64, CYCLEGAN), ("model.ndf", 64, CYCLEGAN),
    ("loss.cycle_weight", 10.0, CYCLEGAN), ("loss.identity_weight", 0.5, CYCLEGAN),
    ("loss.pool_size", 50, CYCLEGAN), ("train.batch_size", 1, CYCLEGAN),
    ("optim.g.learning_rate", 2e-4, CYCLEGAN), ("optim.d.learning_rate", 2e-4, CYCLEGAN),
    ("optim.g.b1", 0.5, CYCLEGAN), ("optim.d.b1", 0.5, CYCLEGAN),
    ("optim.g.schedule", "constant_linear", CYCLEGAN + " (lr_policy linear)"),
    ("optim.g.constant_steps", 100 * 1334, CYCLEGAN + " (n_epochs 100 of 1,334 iterations)"),
    ("optim.g.decay_steps", 100 * 1334, CYCLEGAN + " (n_epochs_decay 100)"),
    ("train.num_steps", 200 * 1334, CYCLEGAN), ("ema.decay", 0.0, CYCLEGAN + " (no EMA)")]


@pytest.mark.parametrize("key, expected, source", PAPER_RECIPE)
def test_horse2zebra_recipe_states_its_source_value(key, expected, source):
    value = horse2zebra_cyclegan.get_config()
    for part in key.split("."):
        value = value[part]
    assert value == expected, source


def test_monet2photo_differs_only_in_data_and_epoch_length():
    monet, horse = monet2photo_cyclegan.get_config(), horse2zebra_cyclegan.get_config()
    assert monet.data.dataset == "tfds:cycle_gan/monet2photo"
    assert monet.train.num_steps == 200 * 6287 and monet.optim.d.decay_steps == 100 * 6287
    monet.data.dataset, monet.train.num_steps = horse.data.dataset, horse.train.num_steps
    for opt in (monet.optim.g, monet.optim.d):
        opt.constant_steps, opt.decay_steps = 100 * 1334, 100 * 1334
    monet.train.sample_every_steps = horse.train.sample_every_steps
    monet.checkpoint.every_steps = horse.checkpoint.every_steps
    assert monet.to_dict() == horse.to_dict()


def count(params):
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))


@pytest.mark.parametrize("recipe, shape, g_count, d_count", [
    (horse2zebra_cyclegan, (256, 256, 3), 11_378_179, 2_764_737),  # the reference's networks
    (fashion_cyclegan, (32, 32, 1), None, None)])
def test_recipes_build_two_generators_and_two_discriminators(recipe, shape, g_count, d_count):
    task = build_task(recipe.get_config())
    g_vars, d_vars = jax.eval_shape(lambda: task.init(jax.random.key(0), shape))
    g, d = g_vars["params"], d_vars["params"]
    assert set(g) == {"g_ab", "g_ba"} and set(d) == {"d_a", "d_b"}
    assert count(g["g_ab"]) == count(g["g_ba"]) and count(d["d_a"]) == count(d["d_b"])
    if g_count:
        assert (count(g["g_ab"]), count(d["d_a"])) == (g_count, d_count)
    assert isinstance(task, CycleGANTask) and task.pool_size == 50


# --- training through train.py ----------------------------------------------------------------

def _unpaired_folder(root, count=3, side=8):
    """trainA/trainB/testA/testB of `count` random 8x8 RGB PNGs each."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("trainA", "trainB", "testA", "testB"):
        (root / split).mkdir(parents=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(
                root / split / f"{i}.png")
    return root


@pytest.mark.slow  # three short runs of four tiny networks: about 3 min on 2 cores
def test_train_resumes_with_a_half_full_pool_bitwise_and_grids_both_directions(tmp_path,
                                                                               one_device):
    from PIL import Image

    from gan_jax.train import train_and_evaluate

    config = horse2zebra_cyclegan.get_config()
    d, m, t = config.data, config.model, config.train
    d.dataset, d.resolution = f"unpaired:{_unpaired_folder(tmp_path / 'data')}", 8
    d.load_size = 10  # cropped to 8 and flipped (the recipe's 286 -> 256)
    m.generator, m.n_layers, m.ngf, m.ndf = "resnet_6blocks", 1, 4, 4
    m.discriminator = "n_layers"
    t.batch_size, t.num_steps, t.log_every_steps, t.sample_every_steps = 2, 4, 2, 4
    config.checkpoint.every_steps = 2
    config.sample.num = 3
    for c in (config.optim.g, config.optim.d):
        c.constant_steps, c.decay_steps = 2, 2
    first = train_and_evaluate(config, tmp_path / "first", devices=one_device, progress=False)
    t.num_steps = 2
    train_and_evaluate(config, tmp_path / "resumed", devices=one_device, progress=False)
    t.num_steps = 4
    resumed = train_and_evaluate(config, tmp_path / "resumed", devices=one_device, progress=False)
    for x, y in zip(jax.tree.leaves(jax.tree.map(_data, first)),
                    jax.tree.leaves(jax.tree.map(_data, resumed)), strict=True):
        np.testing.assert_array_equal(x, y)
    assert int(first.task_state["pool_a"]["count"]) == 8  # 4 steps x 2 fakes of 50: half-full-ish
    grid = np.asarray(Image.open(tmp_path / "first" / "samples" / "step_0000004.png"))
    assert grid.shape == (4 * 9 + 1, 3 * 9 + 1, 3)  # rows A, G_ab(A), B, G_ba(B) of 3 images
    for row, split in ((0, "testA"), (2, "testB")):
        np.testing.assert_array_equal(grid[1 + 9 * row:9 + 9 * row, 1:9],
                                      np.asarray(Image.open(tmp_path / "data" / split / "0.png")))


def _data(x):
    return jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x
