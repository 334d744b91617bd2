"""The augmentation experiment's conditional GAN: the default recipe (configs/digits_mlp.py: an MLP
G and D of two hidden layers of 512, non-saturating loss, R1 gamma = 1, Adam(2e-4, 0.5, 0.999),
batch 64, EMA generator) made class-conditional (`model.num_classes` = 10: the one-hot label
joins z in G, projection in D) and trained at each data set's native resolution, digits 8x8 and
Fashion-MNIST 28x28, so no arm's images are resampled; 3,000 steps.

Why this model: the first version of the experiment used a 16 px BigGAN-style ResNet (cBN,
hierarchical z, projection D, 32 channels) for 1,000 steps; in that budget it drew digit strokes
but did not learn its class conditioning (experiments/augmentation/README.md), so its samples were
label noise. The labels enter this MLP directly, and its steps are ~10x cheaper.
`data.name`, `data.train_fraction`, `data.subset_seed`, `train.seed` and `train.num_steps` are
set by augment.py."""

from gan_jax.configs import digits_mlp

RESOLUTION = {"digits": 8, "fashion_mnist": 28}


def get_config(dataset: str = "digits:train"):
    config = digits_mlp.get_config()
    config.data.name = dataset
    config.data.resolution = RESOLUTION[dataset.split(":")[0]]
    config.model.num_classes = 10
    config.train.num_steps = 3000
    config.train.sample_every_steps = 0
    # the default recipe's EMA (0.999 from step 200, a half-life of 693 steps in 16,000) scaled to
    # these 3,000 steps: 0.995 (half-life 138 steps); at step 3,000 the step-200 generator weighs
    # 0.995^2800 < 1e-6 (0.999 would leave it 6 %: config.EMA_START_WEIGHT_LIMIT)
    config.ema.decay = 0.995
    config.checkpoint.every_steps = 1000
    config.checkpoint.keep = 1
    config.eval.every_steps = 0
    return config
