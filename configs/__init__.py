"""Experiment configs (installed as `gan_jax.configs`); pass a file with --config=configs/NAME.py."""
