"""Default experiment: DCGAN on scikit-learn's 8x8 handwritten digits, upsampled to 16x16.

Every key the code reads is set here; the other configs import this one and change a few fields.
"""

import ml_collections


def _optimizer(learning_rate: float) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(
        name="adam",             # adam | adamw | rmsprop | sgd
        learning_rate=learning_rate,
        b1=0.5,                  # adam/adamw betas; sgd momentum is `momentum`
        b2=0.999,
        eps=1e-8,
        momentum=0.0,            # sgd / rmsprop
        weight_decay=0.0,        # adamw
        schedule="constant",     # constant | cosine | linear | warmup_cosine
        warmup_steps=0,          # in updates of this optimizer
        decay_steps=0,           # in updates of this optimizer (D makes n_critic updates per step)
        grad_clip_norm=0.0,      # 0 disables clipping by global norm
    ))


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()

    config.data = ml_collections.ConfigDict(dict(
        name="digits",           # digits | fashion_mnist[:split] | tfds:NAME[:SPLIT] | folder:PATH
        resolution=16,           # the 8x8 digits are upsampled bilinearly to 16x16
        channels=1,
        data_dir="",             # TFDS data_dir / Fashion-MNIST folder; "" = library default
        mixed_channels="error",  # folder mixing grayscale/RGB/alpha images: error | convert
    ))

    config.model = ml_collections.ConfigDict(dict(
        name="dcgan",            # dcgan | mlp | resnet (configs/*_sngan.py, *_biggan.py) | ...
        latent_dim=64,
        num_classes=0,           # > 0: class-conditional G and D (resnet only); data needs labels
        width=64,                # channels of the last G / first D layer; doubled per stage
        g_norm="batch",          # batch | none
        d_norm="batch",          # batch | none | layer
        hidden_dims=(512, 512),  # mlp only
        bn_momentum=0.9,
        cross_replica_bn=False,  # BatchNorm statistics over the global batch (all devices)
    ))

    config.loss = ml_collections.ConfigDict(dict(
        name="non_saturating",   # minimax | non_saturating | lsgan | wgan | hinge
        gp_weight=0.0,           # WGAN-GP lambda (10 in Gulrajani et al.)
        r1_weight=0.0,           # R1 gamma; the penalty added is gamma / 2 * E||grad D(x)||^2
        r1_every=1,              # lazy R1: computed every this many steps, weighted by it
        clip_value=0.0,          # WGAN weight clipping of D params after each update; 0 disables
        ortho_weight=0.0,        # BigGAN orthogonal regularisation of G's kernels (beta, 1e-4)
    ))

    config.augment = ml_collections.ConfigDict(dict(
        # DiffAugment ops applied to every image D sees (reals and fakes, own random streams):
        # comma-separated subset of color, translation, cutout; "" disables
        policy="",
    ))

    config.optim = ml_collections.ConfigDict()
    config.optim.g = _optimizer(2e-4)
    config.optim.d = _optimizer(2e-4)

    config.ema = ml_collections.ConfigDict(dict(
        decay=0.999,             # 0 disables the EMA generator
        start_step=200,          # before this step the EMA copies the generator
    ))

    config.train = ml_collections.ConfigDict(dict(
        seed=0,
        batch_size=64,           # global, over all devices and hosts
        num_steps=4000,
        n_critic=1,              # D updates per G update, each on a fresh real batch
        log_every_steps=100,
        sample_every_steps=500,
        # A step with a non-finite loss or updated param: 'stop' (name the step, keep the last
        # good checkpoint) or 'skip' (do not apply that step, count it in state.skipped and go on).
        on_nonfinite="stop",
        max_skipped_steps=100,   # 'skip': stop once more steps than this have been skipped
    ))

    config.checkpoint = ml_collections.ConfigDict(dict(
        every_steps=1000,
        keep=3,
    ))

    config.eval = ml_collections.ConfigDict(dict(
        every_steps=1000,        # evaluate during training every this many steps; 0: never
        metrics="fid,kid,is,pr",  # comma-separated subset of fid, kid, is, pr
        # classifier: a small CNN trained once on data.name (cached) | classifier:DIR (made by
        # `python -m gan_jax.features`) | inception | inception:WEIGHTS_PATH (standard FID)
        extractor="classifier",
        num_samples=2000,        # generated images per evaluation (EMA generator when enabled)
        num_real=0,              # real images for the reference features; 0: the whole data set
        seed=0,                  # latents of the evaluation samples: the same at every evaluation
        best_metric="fid",       # keep WORKDIR/best/ by this score (fid, kid, is, precision,
                                 # recall); "": no best checkpoint
        kid_subsets=100,
        kid_subset_size=1000,
        is_splits=10,
        pr_k=3,                  # k of the k-NN radii of precision/recall
    ))

    config.sample = ml_collections.ConfigDict(dict(
        num=64,                  # images in the periodic sample grid
    ))

    # Resuming a workdir whose saved config differs in anything that changes the math
    # (model, loss, data, seed, batch, optimizer) fails unless this is True.
    config.allow_config_change = False
    return config
