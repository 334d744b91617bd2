"""Neutral base config: every key the code reads, with library defaults (not a recipe's values).

A recipe (every other file here) starts from `get_config()` and states its paper's
hyper-parameters explicitly; tests/test_recipes.py checks them against the papers. The family
helpers (`resnet_model`, `stylegan2_section`, `progressive_section`) add the keys one model family
reads, with that family's reference defaults.
"""

import ml_collections


def optimizer(learning_rate: float = 1e-3) -> ml_collections.ConfigDict:
    """An `optim.g` / `optim.d` section: Adam with PyTorch's defaults at `learning_rate`."""
    return ml_collections.ConfigDict(dict(
        name="adam",             # adam | adamw | rmsprop | sgd
        learning_rate=learning_rate,
        b1=0.9,                  # adam/adamw betas; sgd momentum is `momentum`
        b2=0.999,
        eps=1e-8,
        momentum=0.0,            # sgd / rmsprop
        decay=0.9,               # rmsprop: decay of the squared-gradient average (torch's alpha)
        eps_in_sqrt=True,        # rmsprop: g / sqrt(v + eps) (optax); False: g / (sqrt(v) + eps) (torch)
        weight_decay=0.0,        # adamw
        schedule="constant",     # constant | cosine | linear | warmup_cosine | constant_linear
        warmup_steps=0,          # in updates of this optimizer
        constant_steps=0,        # constant_linear: updates at the full rate before the decay
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
        # image-to-image models (pix2pix, cyclegan): a make_pair_source spec (edges2fashion,
        # fashion_sneakers2boots, pairs:DIR, pairs_ab:DIR, unpaired:DIR, tfds:cycle_gan/NAME);
        # `name` is then unused
        dataset="",
        load_size=0,             # image-to-image: train images loaded at this size, randomly cropped
                                 # to `resolution` in the step (pix2pix 286 -> 256); 0: resolution
        flip=True,               # image-to-image: random horizontal flip of the train images in the step
                                 # (the reference's default; False: its --no_flip)
        test_split="test",       # image-to-image: the split of the train-time sample grids
        direction="AtoB",        # image-to-image: AtoB | BtoA (the data set's A and B swapped)
        train_fraction=1.0,      # noise-to-image: train on this fixed fraction of the examples
                                 # (per class when labelled, at least 1 each); 1.0: all
        subset_seed=0,           # which fixed fraction (with train_fraction < 1)
        workers=0,               # processes decoding images (folder:, tfds:); 0: one per core
        cache="",                # decoded folder: images kept in this folder, memory-mapped;
                                 # "": $GAN_JAX_IMAGE_CACHE, else ~/.cache/gan_jax/images; "off"
    ))

    config.model = ml_collections.ConfigDict(dict(
        name="dcgan",            # dcgan | mlp | resnet | stylegan2 | progressive
        latent_dim=64,
        num_classes=0,           # > 0: class-conditional G and D (resnet only); data needs labels
        width=64,                # channels of the last G / first D layer; doubled per stage
        g_norm="batch",          # batch | none
        d_norm="batch",          # batch | none | layer
        hidden_dims=(512, 512),  # mlp only
        bn_momentum=0.9,
        cross_replica_bn=False,  # BatchNorm statistics over the global batch (all devices)
        # image-to-image networks (models/pix2pix.py; junyanz options/base_options.py defaults)
        generator="resnet_9blocks",  # unet_32 | unet_128 | unet_256 | resnet_6blocks | resnet_9blocks
        discriminator="basic",   # basic (70x70 PatchGAN) | n_layers | pixel
        n_layers=3,              # discriminator 'n_layers': PatchGAN depth
        norm="instance",         # batch | instance
        ngf=64,                  # G's first-layer width
        ndf=64,                  # D's first-layer width
        dropout=True,            # U-Net: dropout 0.5 in the inner 8ngf levels (reference: not --no_dropout)
        paper_test_time=True,    # eval-mode G as the paper's test time: dropout on (from each
                                 # image's key), batch norm with the statistics of the image itself
    ))

    config.loss = ml_collections.ConfigDict(dict(
        name="non_saturating",   # minimax | non_saturating | lsgan | wgan | hinge
        gp_weight=0.0,           # WGAN-GP lambda (10 in Gulrajani et al.)
        r1_weight=0.0,           # R1 gamma; the penalty added is gamma / 2 * E||grad D(x)||^2
        r1_every=1,              # lazy R1: computed every this many steps, weighted by it
        # lazy R1 (r1_every > 1): 'separate': its own D update on those steps, after the main one
        # (NVlabs' Dreg phase); 'folded': added to the main D loss of those steps
        r1_mode="separate",
        clip_value=0.0,          # WGAN weight clipping of D params after each update; 0 disables
        ortho_weight=0.0,        # BigGAN orthogonal regularisation of G's kernels (beta, 1e-4)
        # StyleGAN2 path length regularisation (stylegan2-ada-pytorch training/loss.py): its own G
        # update every pl_every steps, weighted by pl_every; 0 disables (NVlabs: 2, cifar 0)
        pl_weight=0.0,
        pl_every=4,              # NVlabs' G_reg_interval
        pl_decay=0.01,           # of the running mean of path lengths
        pl_batch_shrink=2,       # the penalty uses 1/this of the G batch
        l1_weight=100.0,         # pix2pix: lambda_L1 of |G(A) - B| (junyanz models/pix2pix_model.py)
        gan_weight=1.0,          # pix2pix: weight of G's GAN term (0: the L1-only ablation)
        # CycleGAN (junyanz options/train_options.py, models/cycle_gan_model.py)
        cycle_weight=10.0,       # lambda_A = lambda_B of the two cycle-consistency L1 terms
        identity_weight=0.5,     # lambda_identity: the identity L1 terms weigh this * cycle_weight
        pool_size=50,            # fakes in each history pool D draws from; 0: no pool
    ))

    # inpainting (model.name='inpainting'; DeepFill v2 as mmagic's base_deepfillv2.py; its
    # networks read model.generator two_stage | encoder_decoder, ngf (G width), ndf, n_layers)
    config.inpaint = ml_collections.ConfigDict(dict(
        mask_kinds=("box", "free"),  # each example's mask: a kind drawn uniformly from these
        area_range=(0.0, 0.6),   # covered fraction of every mask (redrawn until inside)
        dilations=(2, 4, 8, 16),  # G's dilated gated convs (inpaint_model.py conv7-10)
        gan_weight=0.1,          # loss_gan loss_weight (hinge G term)
        hole_weight=1.0,         # loss_l1_hole, per stage
        valid_weight=1.0,        # loss_l1_valid, per stage
        test_data="",            # data source of the test split (evaluate, sample grids); "": data.name
    ))

    config.augment = ml_collections.ConfigDict(dict(
        # DiffAugment ops applied to every image D sees (reals and fakes, own random streams):
        # comma-separated subset of color, translation, cutout; "" disables
        policy="",
        # "diffaugment" (the policy above), "ada" (stylegan2-ada's bgc pipeline with p adjusted
        # towards ada_target) or "fixed" (bgc at the constant p); gan_jax/ada.py
        kind="diffaugment",
        p=0.0,                   # ada: the initial p (the reference's 0); fixed: p throughout
        ada_target=0.6,          # r_t = E[sign(D(real))] that p is adjusted towards
        ada_interval=4,          # D updates between adjustments
        ada_kimg=500.0,          # thousands of real images for p to move by 1
    ))

    config.optim = ml_collections.ConfigDict()
    config.optim.g = optimizer()
    config.optim.d = optimizer()

    config.ema = ml_collections.ConfigDict(dict(
        decay=0.0,               # 0 disables the EMA generator
        start_step=0,            # before this step the EMA copies the generator
    ))

    config.train = ml_collections.ConfigDict(dict(
        seed=0,
        batch_size=64,           # global, over all devices and hosts (each D step's real batch)
        g_batch_size=0,          # fakes in the G step; 0: batch_size
        num_steps=1000,
        n_critic=1,              # D updates per G update, each on a fresh real batch
        log_every_steps=100,
        sample_every_steps=500,
        # A step with a non-finite loss or updated param: 'stop' (name the step, keep the last
        # good checkpoint) or 'skip' (do not apply that step, count it in state.skipped and go on).
        on_nonfinite="stop",
        max_skipped_steps=100,   # 'skip': stop once more steps than this have been skipped
        # float32 | bfloat16 | float16: the dtype of G's and D's convolutions and matmuls (dcgan,
        # mlp, resnet; stylegan2: float32 | bfloat16); params, optimizer states, losses,
        # penalties, normalisation statistics and D's logits stay float32; float16 adds dynamic
        # loss scaling (gan_jax/precision.py)
        compute_dtype="float32",
    ))

    config.checkpoint = ml_collections.ConfigDict(dict(
        every_steps=1000,
        keep=3,
    ))

    config.eval = ml_collections.ConfigDict(dict(
        every_steps=1000,        # evaluate during training every this many steps; 0: never
        metrics="fid,kid,is,pr",  # comma-separated subset of fid, kid, is, pr, cas
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


def resnet_model(config: ml_collections.ConfigDict, g_channels, d_channels, d_down
                 ) -> ml_collections.ConfigDict:
    """Set model.name = 'resnet' and every key the ResNet models read (SNGAN defaults)."""
    m = config.model
    m.name = "resnet"
    m.g_channels = g_channels        # (C0, C1, ..., Cn): G's base map, then each 2x block
    m.d_channels = d_channels        # D blocks' output channels (block 0: the optimized block)
    m.d_down = d_down                # 2x average pooling after each D block
    m.shared_dim = 0                 # > 0: BigGAN shared class embedding feeding G's cBN
    m.hierarchical = False           # BigGAN hierarchical latent: a chunk of z per G block
    m.attention_resolution = 0       # self-attention after the G/D block at this size; 0: none
    m.g_spectral_norm = False        # spectral norm in G (BigGAN: True)
    m.d_spectral_norm = True
    m.weight_init = "xavier"         # weights: xavier (SNGAN) | N02 (N(0, 0.02), BigGAN-PyTorch)
    m.g_norm = m.d_norm = "batch"    # (DCGAN keys; the ResNet G always uses (c)BN, D none)
    return config


def stylegan2_section(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Set model.name = 'stylegan2' and `config.stylegan2` with NVlabs' config-F defaults."""
    config.model.name = "stylegan2"
    config.stylegan2 = ml_collections.ConfigDict(dict(
        w_dim=512,                    # NVlabs: w_dim = z_dim = 512
        mapping_layers=8,             # FC layers of G's mapping network (config F: 8; cifar: 2)
        d_mapping_layers=8,           # FC layers of D's label mapping (conditional; NVlabs: 8)
        mapping_lr_multiplier=0.01,
        w_avg_beta=0.995,             # EMA of the mean w (truncation target)
        channel_base=32768,           # channels at resolution r: min(channel_base//r, channel_max)
        channel_max=512,
        d_architecture="resnet",      # resnet (config F) | orig (no residual skips; NVlabs cifar)
        mbstd_group_size=4,           # minibatch stddev group (must divide the per-device batch)
        mbstd_num_features=1,
        style_mixing_prob=0.9,        # NVlabs cifar: 0
    ))
    return config


def progressive_section(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Set model.name = 'progressive' and `config.progressive` (PGGAN's defaults, 4 px start)."""
    config.model.name = "progressive"
    config.progressive = ml_collections.ConfigDict(dict(
        start_resolution=4,      # level 0; each later level doubles it up to data.resolution
        stable_steps=800,        # steps at alpha = 1 per level (the last level trains on)
        fade_steps=400,          # steps over which a new level's alpha rises 0 -> 1
        fmap_base=8192,          # channels at 2**k px: min(fmap_base / 2**(k - 1), fmap_max)
        fmap_max=512,
        mbstd_group_size=4,      # minibatch stddev group (must divide the per-device batch)
        drift_weight=0.001,      # epsilon_drift * E[D(x)^2] added to D's loss
    ))
    return config


def adam(c: ml_collections.ConfigDict, learning_rate: float, b1: float, b2: float
         ) -> ml_collections.ConfigDict:
    """Make the optimizer section `c` Adam(learning_rate, b1, b2), constant rate."""
    c.name = "adam"
    c.learning_rate = learning_rate
    c.b1, c.b2 = b1, b2
    return c


def lazy_adam(c: ml_collections.ConfigDict, learning_rate: float, b1: float, b2: float,
              reg_interval: int) -> ml_collections.ConfigDict:
    """NVlabs' Adam for a network regularised every `reg_interval` steps (stylegan2-ada-pytorch
    training/training_loop.py): lr * r/(r+1) and betas ** (r/(r+1)), r = reg_interval."""
    ratio = reg_interval / (reg_interval + 1)
    c.name = "adam"
    c.learning_rate = learning_rate * ratio
    c.b1 = b1 ** ratio
    c.b2 = b2 ** ratio
    c.eps = 1e-8
    return c
