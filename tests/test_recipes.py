"""Each recipe's effective hyper-parameters against the paper (or reference code) it follows.

One row per (recipe, key): the value the source states and where it says so. A recipe that
deliberately departs from its source (a CPU-sized variant, a library addition such as the EMA
generator) names that in the source column. configs/base.py holds neutral values only, so a key a
recipe forgets shows up here as the base's value.
"""

import importlib

import pytest

DCGAN = "Radford et al. 2016, Sec. 4 (Adam 2e-4, beta1 0.5, batch 128, z 100)"
WGAN_GP = "Gulrajani et al. 2017, Algorithm 1 (lambda 10, n_critic 5, Adam 1e-4, 0, 0.9)"
WGAN_GP_CODE = "igul222/improved_wgan_training gan_cifar.py (BATCH_SIZE 64, ITERS 200000)"
SNGAN = "pfnet-research/sngan_projection configs/sn_cifar10_unconditional.yml, updater.py"
BIGGAN = "ajbrock/BigGAN-PyTorch scripts/launch_cifar_ema.sh"
NVLABS = "NVlabs/stylegan2-ada-pytorch train.py cfg_specs, training/training_loop.py"
PGGAN = "tkarras/progressive_growing_of_gans config.py, train.py (Karras et al. 2018)"
R1 = "Mescheder et al. 2018, eq. 9 (R1 on real data, gamma / 2 weight)"
LIBRARY = "not in the source: library choice"
CPU = "CPU-sized variant of the recipe named in its docstring"
MLP_GAN = "Goodfellow et al. 2014 (fully connected G and D)"
DIGITS = "experiments/digits_mlp and experiments/digits_dcgan ('what each change bought')"

# NVlabs' lazy regularisation: lr * r/(r+1), beta ** (r/(r+1)); G interval 4, D interval 16.
G_RATIO, D_RATIO = 4 / 5, 16 / 17

ADA_TRAIN = "NVlabs stylegan2-ada-pytorch train.py"
ADA_LOOP = "NVlabs stylegan2-ada-pytorch training/training_loop.py"
ADA_LOSS = "NVlabs stylegan2-ada-pytorch training/loss.py"

RECIPES = [
    # recipe, key, value, source
    ("cifar10_dcgan", "optim.g.learning_rate", 2e-4, DCGAN),
    ("cifar10_dcgan", "optim.d.learning_rate", 2e-4, DCGAN),
    ("cifar10_dcgan", "optim.g.b1", 0.5, DCGAN),
    ("cifar10_dcgan", "optim.d.b1", 0.5, DCGAN),
    ("cifar10_dcgan", "optim.g.b2", 0.999, "dcgan.torch (Adam's default beta2)"),
    ("cifar10_dcgan", "train.batch_size", 128, DCGAN),
    ("cifar10_dcgan", "model.latent_dim", 100, DCGAN),
    ("cifar10_dcgan", "loss.name", "non_saturating", DCGAN),
    ("cifar10_dcgan", "train.n_critic", 1, DCGAN),
    ("cifar10_dcgan", "ema.decay", 0.999, LIBRARY),
    ("cifar10_wgan_gp", "loss.name", "wgan", WGAN_GP),
    ("cifar10_wgan_gp", "loss.gp_weight", 10.0, WGAN_GP),
    ("cifar10_wgan_gp", "train.n_critic", 5, WGAN_GP),
    ("cifar10_wgan_gp", "optim.g.learning_rate", 1e-4, WGAN_GP),
    ("cifar10_wgan_gp", "optim.d.learning_rate", 1e-4, WGAN_GP),
    ("cifar10_wgan_gp", "optim.g.b1", 0.0, WGAN_GP),
    ("cifar10_wgan_gp", "optim.d.b1", 0.0, WGAN_GP),
    ("cifar10_wgan_gp", "optim.g.b2", 0.9, WGAN_GP),
    ("cifar10_wgan_gp", "optim.d.b2", 0.9, WGAN_GP),
    ("cifar10_wgan_gp", "train.batch_size", 64, WGAN_GP_CODE),
    ("cifar10_wgan_gp", "train.num_steps", 200_000, WGAN_GP_CODE),
    ("cifar10_sngan", "loss.name", "hinge", SNGAN),
    ("cifar10_sngan", "train.n_critic", 5, SNGAN),
    ("cifar10_sngan", "train.batch_size", 64, SNGAN),
    ("cifar10_sngan", "train.g_batch_size", 128, SNGAN),
    ("cifar10_sngan", "train.num_steps", 50_000, SNGAN),
    ("cifar10_sngan", "optim.g.learning_rate", 2e-4, SNGAN),
    ("cifar10_sngan", "optim.d.learning_rate", 2e-4, SNGAN),
    ("cifar10_sngan", "optim.g.b1", 0.0, SNGAN),
    ("cifar10_sngan", "optim.g.b2", 0.9, SNGAN),
    ("cifar10_sngan", "optim.d.b1", 0.0, SNGAN),
    ("cifar10_sngan", "optim.d.b2", 0.9, SNGAN),
    ("cifar10_sngan", "optim.g.schedule", "linear", SNGAN + " (LinearShift to 0)"),
    ("cifar10_sngan", "optim.d.schedule", "linear", SNGAN + " (LinearShift to 0)"),
    ("cifar10_sngan", "optim.g.decay_steps", 50_000, SNGAN + " (1 G update per iteration)"),
    ("cifar10_sngan", "optim.d.decay_steps", 250_000, SNGAN + " (5 D updates per iteration)"),
    ("cifar10_sngan", "model.latent_dim", 128, SNGAN),
    ("cifar10_sngan", "ema.decay", 0.0, SNGAN + " (G itself is evaluated)"),
    ("cifar10_biggan", "loss.name", "hinge", BIGGAN),
    ("cifar10_biggan", "train.batch_size", 50, BIGGAN),
    ("cifar10_biggan", "train.n_critic", 4, BIGGAN),
    ("cifar10_biggan", "optim.g.learning_rate", 2e-4, BIGGAN),
    ("cifar10_biggan", "optim.d.learning_rate", 2e-4, BIGGAN),
    ("cifar10_biggan", "optim.g.b1", 0.0, BIGGAN),
    ("cifar10_biggan", "optim.g.b2", 0.999, BIGGAN),
    ("cifar10_biggan", "optim.d.b1", 0.0, BIGGAN),
    ("cifar10_biggan", "optim.d.b2", 0.999, BIGGAN),
    ("cifar10_biggan", "ema.decay", 0.9999, BIGGAN),
    ("cifar10_biggan", "ema.start_step", 1000, BIGGAN),
    ("cifar10_biggan", "model.g_spectral_norm", True, BIGGAN),
    ("cifar10_biggan", "model.d_spectral_norm", True, BIGGAN),
    ("cifar10_biggan", "loss.ortho_weight", 0.0, BIGGAN),
    ("cifar10_biggan", "model.weight_init", "N02", BIGGAN + " (--G_init N02 --D_init N02)"),
    ("cifar10_sngan", "model.weight_init", "xavier", SNGAN + " (Chainer's GlorotUniform)"),
    ("cifar10_stylegan2", "optim.g.learning_rate", 0.0025 * G_RATIO, NVLABS),
    ("cifar10_stylegan2", "optim.d.learning_rate", 0.0025 * D_RATIO, NVLABS),
    ("cifar10_stylegan2", "optim.g.b1", 0.0, NVLABS),
    ("cifar10_stylegan2", "optim.g.b2", 0.99 ** G_RATIO, NVLABS),
    ("cifar10_stylegan2", "optim.d.b2", 0.99 ** D_RATIO, NVLABS),
    ("cifar10_stylegan2", "optim.d.eps", 1e-8, NVLABS),
    ("cifar10_stylegan2", "train.batch_size", 64, NVLABS + " (cifar: mb 64)"),
    ("cifar10_stylegan2", "train.num_steps", 1_562_500, NVLABS + " (cifar: 100,000 kimg)"),
    ("cifar10_stylegan2", "loss.name", "non_saturating", NVLABS),
    ("cifar10_stylegan2", "loss.r1_weight", 0.01, NVLABS + " (cifar: gamma 0.01)"),
    ("cifar10_stylegan2", "loss.r1_every", 16, NVLABS + " (D_reg_interval 16)"),
    ("cifar10_stylegan2", "loss.r1_mode", "separate", NVLABS + " (Dreg phase)"),
    ("cifar10_stylegan2", "stylegan2.mbstd_group_size", 32, NVLABS + " (cifar: mbstd 32)"),
    ("cifar10_stylegan2", "stylegan2.mapping_layers", 2, NVLABS + " (cifar: map 2)"),
    ("cifar10_stylegan2", "stylegan2.style_mixing_prob", 0.0, NVLABS + " (cifar: 0)"),
    ("cifar10_stylegan2", "stylegan2.d_architecture", "orig", NVLABS + " (cifar: orig)"),
    ("cifar10_stylegan2", "ema.decay", 0.5 ** (64 / 500_000), NVLABS + " (cifar: ema 500 kimg)"),
    ("celeba64_stylegan2", "loss.r1_weight", 0.0002 * 64 ** 2 / 64, NVLABS + " (auto gamma)"),
    ("celeba64_stylegan2", "loss.r1_mode", "separate", NVLABS + " (Dreg phase)"),
    ("celeba64_stylegan2", "optim.d.learning_rate", 0.0025 * D_RATIO, NVLABS),
    ("celeba64_stylegan2", "optim.d.b2", 0.99 ** D_RATIO, NVLABS),
    ("celeba64_stylegan2", "ema.decay", 0.5 ** (64 / 20_000), NVLABS + " (auto: ema 20 kimg)"),
    ("ffhq256_stylegan2", "loss.r1_weight", 1.0, NVLABS + " (paper256: gamma 1)"),
    ("ffhq256_stylegan2", "stylegan2.mapping_layers", 8, NVLABS + " (paper256: map 8)"),
    ("ffhq256_stylegan2", "stylegan2.mbstd_group_size", 8, NVLABS + " (paper256: mbstd 8)"),
    ("ffhq256_stylegan2", "optim.g.learning_rate", 0.0025 * G_RATIO, NVLABS),
    ("ffhq256_stylegan2", "optim.d.b2", 0.99 ** D_RATIO, NVLABS),
    ("ffhq256_stylegan2", "loss.pl_weight", 2.0, ADA_LOSS + " (pl_weight 2; only cifar: 0)"),
    ("celeba64_stylegan2", "loss.pl_weight", 2.0, ADA_LOSS + " (pl_weight 2; only cifar: 0)"),
    ("cifar10_stylegan2", "loss.pl_weight", 0.0, NVLABS + " (cifar: pl_weight 0)"),
    ("celeba64_progressive", "loss.name", "wgan", PGGAN),
    ("celeba64_progressive", "loss.gp_weight", 10.0, PGGAN),
    ("celeba64_progressive", "progressive.drift_weight", 0.001, PGGAN),
    ("celeba64_progressive", "optim.g.learning_rate", 1e-3, PGGAN),
    ("celeba64_progressive", "optim.d.learning_rate", 1e-3, PGGAN),
    ("celeba64_progressive", "optim.g.b1", 0.0, PGGAN),
    ("celeba64_progressive", "optim.g.b2", 0.99, PGGAN),
    ("celeba64_progressive", "optim.d.b2", 0.99, PGGAN),
    ("celeba64_progressive", "ema.decay", 0.999, PGGAN + " (G_smoothing 0.999)"),
    ("celeba64_progressive", "progressive.stable_steps", 9375, PGGAN + " (600 kimg at batch 64)"),
    ("celeba64_progressive", "progressive.fade_steps", 9375, PGGAN + " (600 kimg at batch 64)"),
    ("celeba64_progressive", "model.latent_dim", 512, PGGAN),
    ("digits_dcgan", "optim.g.learning_rate", 2e-4, DCGAN),
    ("digits_dcgan", "optim.d.learning_rate", 2e-4, DCGAN),
    ("digits_dcgan", "optim.g.b1", 0.5, DCGAN),
    ("digits_dcgan", "optim.d.b1", 0.5, DCGAN),
    ("digits_dcgan", "loss.name", "non_saturating", DCGAN),
    ("digits_dcgan", "model.g_norm", "batch", DCGAN),
    ("digits_dcgan", "model.d_norm", "none", R1 + " replaces DCGAN's BatchNorm in D"),
    ("digits_dcgan", "loss.r1_weight", 1.0, R1 + " (gamma 1: experiments/digits_dcgan)"),
    ("digits_dcgan", "loss.r1_every", 1, R1 + " (every step)"),
    ("digits_dcgan", "model.width", 32, CPU + " (DCGAN example: 64)"),
    ("digits_dcgan", "train.num_steps", 10_000, CPU),
    ("digits_dcgan", "ema.decay", 0.999, LIBRARY),
    ("digits_mlp", "model.name", "mlp", MLP_GAN),
    ("digits_mlp", "model.hidden_dims", (512, 512), LIBRARY),
    ("digits_mlp", "model.g_norm", "none", MLP_GAN),
    ("digits_mlp", "data.resolution", 8, DIGITS + ": the data's native size"),
    ("digits_mlp", "optim.g.learning_rate", 2e-4, DCGAN),
    ("digits_mlp", "optim.d.learning_rate", 2e-4, DCGAN),
    ("digits_mlp", "optim.g.b1", 0.5, DCGAN),
    ("digits_mlp", "optim.d.b1", 0.5, DCGAN),
    ("digits_mlp", "loss.name", "non_saturating", MLP_GAN + " (Sec. 3, the -log D(G(z)) G loss)"),
    ("digits_mlp", "loss.r1_weight", 1.0, R1 + " (gamma 1: " + DIGITS + ")"),
    ("digits_mlp", "loss.r1_every", 1, R1 + " (every step)"),
    ("digits_mlp", "train.num_steps", 16_000, DIGITS),
    ("digits_mlp", "ema.decay", 0.999, LIBRARY),
    ("digits_progressive", "optim.g.b2", 0.99, PGGAN),
    ("digits_progressive", "ema.decay", 0.99, CPU + " (short phases)"),
    ("digits_sngan", "train.n_critic", 2, CPU + " (cifar10_sngan: 5)"),
    ("digits_sngan", "optim.d.b2", 0.9, SNGAN),
    ("digits_stylegan2", "loss.r1_mode", "separate", NVLABS),
    ("digits_stylegan2", "optim.d.learning_rate", 0.0025 * D_RATIO, NVLABS),
    ("mnist_dcgan", "optim.g.b1", 0.5, DCGAN),
    ("mnist_dcgan", "train.batch_size", 64, "Lucic et al. 2018, Sec. 5 (batch 64)"),
    ("mnist_mlp_lsgan", "loss.name", "lsgan", "Mao et al. 2017"),
    ("ffhq256_stylegan2_ada", "augment.kind", "ada", ADA_TRAIN),
    ("ffhq256_stylegan2_ada", "augment.ada_target", 0.6, ADA_TRAIN),
    ("ffhq256_stylegan2_ada", "augment.ada_interval", 4, ADA_LOOP),
    ("ffhq256_stylegan2_ada", "augment.ada_kimg", 500.0, ADA_LOOP),
    ("ffhq256_stylegan2_ada", "loss.pl_weight", 2.0, ADA_LOSS),
    ("ffhq256_stylegan2_ada", "loss.pl_decay", 0.01, ADA_LOSS),
    ("ffhq256_stylegan2_ada", "loss.pl_batch_shrink", 2, ADA_LOSS),
    ("folder64_stylegan2_ada", "train.batch_size", 32, ADA_TRAIN + " (--cfg=auto at 64 px)"),
    ("folder64_stylegan2_ada", "loss.r1_weight", 0.0256, ADA_TRAIN + " (--cfg=auto at 64 px)"),
    ("folder64_stylegan2_ada", "stylegan2.channel_base", 16384, ADA_TRAIN + " (--cfg=auto)"),
    ("afhq512_stylegan2_ada", "train.batch_size", 64, NVLABS + " (paper512: mb 64)"),
    ("afhq512_stylegan2_ada", "stylegan2.mbstd_group_size", 8, NVLABS + " (paper512: mbstd 8)"),
    ("afhq512_stylegan2_ada", "stylegan2.channel_base", 32768, NVLABS + " (paper512: fmaps 1)"),
    ("afhq512_stylegan2_ada", "stylegan2.mapping_layers", 8, NVLABS + " (paper512: map 8)"),
    ("afhq512_stylegan2_ada", "loss.r1_weight", 0.5, NVLABS + " (paper512: gamma 0.5)"),
    ("afhq512_stylegan2_ada", "optim.g.learning_rate", 0.0025 * G_RATIO, NVLABS),
    ("afhq512_stylegan2_ada", "optim.d.b2", 0.99 ** D_RATIO, NVLABS),
    ("afhq512_stylegan2_ada", "ema.decay", 0.5 ** (64 / 20_000), NVLABS + " (paper512: ema 20)"),
    ("afhq512_stylegan2_ada", "augment.ada_kimg", 500.0, ADA_LOOP),
    ("afhq512_stylegan2_ada", "loss.pl_weight", 2.0, ADA_LOSS),
    ("metfaces1024_stylegan2_ada", "train.batch_size", 32, NVLABS + " (paper1024: mb 32)"),
    ("metfaces1024_stylegan2_ada", "stylegan2.mbstd_group_size", 4, NVLABS + " (paper1024: mbstd 4)"),
    ("metfaces1024_stylegan2_ada", "stylegan2.channel_base", 32768, NVLABS + " (paper1024: fmaps 1)"),
    ("metfaces1024_stylegan2_ada", "loss.r1_weight", 2.0, NVLABS + " (paper1024: gamma 2)"),
    ("metfaces1024_stylegan2_ada", "optim.g.learning_rate", 0.002 * G_RATIO, NVLABS + " (paper1024: lrate 0.002)"),
    ("metfaces1024_stylegan2_ada", "optim.d.learning_rate", 0.002 * D_RATIO, NVLABS + " (paper1024: lrate 0.002)"),
    ("metfaces1024_stylegan2_ada", "ema.decay", 0.5 ** (32 / 10_000), NVLABS + " (paper1024: ema 10)"),
    ("metfaces1024_stylegan2_ada", "augment.kind", "ada", ADA_TRAIN),
    ("digits500_stylegan2_ada", "train.batch_size", 32, ADA_TRAIN + " (--cfg=auto at 16 px)"),
    ("digits500_stylegan2_ada", "loss.r1_weight", 0.0016, ADA_TRAIN + " (--cfg=auto at 16 px)"),
    ("digits500_stylegan2_ada", "optim.g.b2", 0.99 ** G_RATIO, NVLABS),
    ("digits500_stylegan2_ada", "loss.pl_weight", 2.0, ADA_LOSS),
    ("digits500_stylegan2_ada", "augment.ada_kimg", 20.0, CPU + " (NVlabs: 500)"),
]


def _value(name: str, key: str):
    config = importlib.import_module(f"gan_jax.configs.{name}").get_config()
    for part in key.split("."):
        config = config[part]
    return config


@pytest.mark.parametrize("name, key, expected, source", RECIPES)
def test_recipe_states_its_source_value(name, key, expected, source):
    value = _value(name, key)
    assert value == pytest.approx(expected, rel=1e-12) if isinstance(expected, float) \
        else value == expected, f"{name}: {key} = {value!r}, {source} says {expected!r}"


@pytest.mark.parametrize("name", sorted({row[0] for row in RECIPES}))
def test_recipes_decay_over_their_generator_iterations(name):
    """A decaying schedule reaches 0 at the last step for G and D: D counts n_critic updates per
    step (optax counts updates; sngan_projection's LinearShift counts G iterations)."""
    from gan_jax import optim

    config = importlib.import_module(f"gan_jax.configs.{name}").get_config()
    updates = {"g": 1, "d": config.train.n_critic}
    for net, per_step in updates.items():
        c = config.optim[net]
        if c.schedule != "constant":
            assert c.decay_steps == per_step * config.train.num_steps
            schedule = optim.SCHEDULES[c.schedule](c)
            assert float(schedule(0)) == pytest.approx(c.learning_rate)
            assert float(schedule(per_step * config.train.num_steps // 2)) == pytest.approx(
                c.learning_rate / 2)
            # sngan_projection sets lr(t) = lr0 (1 - t / T) after iteration t; D's k-th update of
            # step t runs at lr0 (1 - (n t + k) / (n T)): within 1 / T of it
            assert float(schedule(per_step * 10 + per_step - 1)) >= c.learning_rate * (
                1 - 11 / config.train.num_steps) - 1e-12
            assert float(schedule(per_step * config.train.num_steps)) == 0.0
