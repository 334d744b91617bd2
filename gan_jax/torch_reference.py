"""PyTorch reference timings for the CPU benchmark (torch is imported lazily, only here).

`dcgan_step_timing` times one training step of the same DCGAN as `gan_jax.models.dcgan`, written
in PyTorch the way PyTorch's DCGAN example trains it:

* G: Linear(latent, base*base*C0, bias=False) -> (B, C0, base, base) -> BatchNorm2d -> ReLU, then
  [ConvTranspose2d(C, C/2, 4, 2, 1, bias=False) -> BatchNorm2d -> ReLU] * (n-1), then
  ConvTranspose2d(C, channels, 4, 2, 1) -> tanh; base 4 (7 for 28 px), n = log2(resolution/base),
  C0 = width * 2**(n-1). (The Linear equals the example's first ConvTranspose2d(nz, C0, 4, 1, 0).)
* D: Conv2d(channels, width, 4, 2, 1) -> LeakyReLU(0.2), then [Conv2d(C, 2C, 4, 2, 1, bias=False)
  -> BatchNorm2d -> LeakyReLU(0.2)] * (n-1), then flatten -> Linear(base*base*C, 1) (equals the
  example's final 4x4 valid Conv2d).
* init N(0, 0.02) for conv/linear weights, N(1, 0.02) for BatchNorm weights, zero biases.
* one step: D update with BCE-with-logits on real (label 1) and G(z).detach() (label 0), then G
  update with the non-saturating loss BCE(D(G(z)), 1) on the same fake; Adam(2e-4, (0.5, 0.999)).
Data loading is not timed: the "real" batch is a fixed random tensor in [-1, 1].
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from typing import Any


def _torch():
    try:
        import torch
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("the PyTorch reference needs torch: pip install torch") from e
    return torch


@contextlib.contextmanager
def _threads(threads: int | None):
    """torch with its intra-op thread count set to `threads` (None: unchanged), restored after."""
    torch = _torch()
    old = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield torch
    finally:
        torch.set_num_threads(old)


def _stages(resolution: int) -> tuple[int, int]:
    for base in (4, 7):
        stages = math.log2(resolution / base) if resolution >= base else -1
        if stages >= 1 and stages == int(stages):
            return base, int(stages)
    raise ValueError(f"DCGAN cannot produce {resolution}x{resolution} images: the resolution must "
                     f"be 4 * 2**k or 7 * 2**k")


def build_dcgan(resolution: int, channels: int, width: int, latent_dim: int) -> tuple[Any, Any]:
    """(generator, discriminator) torch modules, DCGAN-initialized."""
    torch = _torch()
    nn = torch.nn
    base, stages = _stages(resolution)
    c0 = width * 2 ** (stages - 1)

    class Generator(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(latent_dim, base * base * c0, bias=False)
            self.bn0 = nn.BatchNorm2d(c0)
            layers, c = [], c0
            for _ in range(stages - 1):
                layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False),
                           nn.BatchNorm2d(c // 2), nn.ReLU(True)]
                c //= 2
            layers += [nn.ConvTranspose2d(c, channels, 4, 2, 1, bias=True), nn.Tanh()]
            self.net = nn.Sequential(*layers)

        def forward(self, z):
            x = self.fc(z).view(z.shape[0], c0, base, base)
            return self.net(torch.relu(self.bn0(x)))

    class Discriminator(nn.Module):
        def __init__(self):
            super().__init__()
            layers, c = [nn.Conv2d(channels, width, 4, 2, 1, bias=True),
                         nn.LeakyReLU(0.2, True)], width
            for _ in range(stages - 1):
                layers += [nn.Conv2d(c, 2 * c, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * c),
                           nn.LeakyReLU(0.2, True)]
                c *= 2
            self.net = nn.Sequential(*layers)
            self.fc = nn.Linear(base * base * c, 1)

        def forward(self, x):
            return self.fc(self.net(x).flatten(1)).view(-1)

    def init(m):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)

    g, d = Generator(), Discriminator()
    g.apply(init)
    d.apply(init)
    return g, d


def _median_time(fn, steps: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def dcgan_step_timing(resolution: int, channels: int, width: int, latent_dim: int,
                      batch_size: int, steps: int = 5, warmup: int = 2,
                      threads: int | None = None, device: str = "cpu") -> dict:
    """Median seconds of one PyTorch DCGAN training step (D update + G update) on `device`.

    Returns {'s_per_step', 'img_per_s', 'torch_version', 'threads', 'device'}; `threads` (None =
    torch's default) sets torch's intra-op thread count for the measurement and is restored
    afterwards. On CUDA each step ends with a synchronize, so the time is the GPU's.
    """
    with _threads(threads) as torch:
        torch.manual_seed(0)
        g, d = build_dcgan(resolution, channels, width, latent_dim)
        g, d = g.to(device), d.to(device)
        g.train()
        d.train()
        opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
        bce = torch.nn.BCEWithLogitsLoss()
        real = torch.rand(batch_size, channels, resolution, resolution, device=device) * 2 - 1
        ones = torch.ones(batch_size, device=device)
        zeros = torch.zeros(batch_size, device=device)
        sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

        def step():
            # As in pytorch/examples dcgan/main.py.
            d.zero_grad()
            bce(d(real), ones).backward()
            fake = g(torch.randn(batch_size, latent_dim, device=device))
            bce(d(fake.detach()), zeros).backward()
            opt_d.step()
            g.zero_grad()
            bce(d(fake), ones).backward()
            opt_g.step()
            sync()

        s = _median_time(step, steps, warmup)
        return {"s_per_step": s, "img_per_s": batch_size / s, "torch_version": torch.__version__,
                "threads": torch.get_num_threads(), "device": device}


def conv_transpose_kernel_grad_timing(batch: int, in_ch: int, out_ch: int, size: int,
                                      repeats: int = 3, threads: int | None = None) -> float:
    """Median seconds for forward + backward (input and weight gradients) of one
    ConvTranspose2d(in_ch, out_ch, 4, 2, 1, bias=False) on a (batch, in_ch, size, size) input."""
    with _threads(threads) as torch:
        torch.manual_seed(0)
        layer = torch.nn.ConvTranspose2d(in_ch, out_ch, 4, 2, 1, bias=False)
        x = torch.randn(batch, in_ch, size, size, requires_grad=True)
        cotangent = torch.randn(batch, out_ch, 2 * size, 2 * size)

        def fwd_bwd():
            x.grad = None
            layer.weight.grad = None
            layer(x).backward(cotangent)

        return _median_time(fwd_bwd, repeats, 1)


__all__ = ["build_dcgan", "dcgan_step_timing", "conv_transpose_kernel_grad_timing"]
