"""Does GAN-generated data help a classifier? For each data set, real-data budget (a fraction of
the train split, per class) and seed: train the conditional GAN of cgan.py only on that subset,
export k x (subset size) labelled samples (balanced over the classes), then train the project's
small classifier (gan_jax.metrics.classifier, the same steps, no classic augmentation in any arm)
on (a) the real subset, (b) the real subset + the samples, (c) the samples only, and test each on
the real test split. Resumable: finished GAN runs, exports and scores are reused.

    python experiments/augmentation/augment.py --out=runs/augmentation [--smoke]

Writes OUT/scores.jsonl (one line per data set, fraction, seed and arm), and results.md (mean ±
std over the seeds), results.svg (the plot) and samples_<data set>.png (real images and seed 0's
exported samples, two of each class) beside this file (OUT with --smoke).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ARMS = ("real", "real+synthetic", "synthetic")
COLOURS = {"real": "#1f77b4", "real+synthetic": "#2ca02c", "synthetic": "#d62728"}


def load_config(dataset: str):
    """cgan.py's config for `dataset`."""
    spec = importlib.util.spec_from_file_location("cgan", HERE / "cgan.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(dataset)


def train_gan(out: Path, dataset: str, fraction: float, seed: int, steps: int) -> Path:
    """The GAN's workdir, trained (or resumed) on `fraction` of `dataset` with `seed`."""
    from gan_jax.train import train_and_evaluate

    config = load_config(dataset)
    config.data.train_fraction = fraction
    config.data.subset_seed = seed
    config.train.seed = seed
    config.train.num_steps = steps
    config.checkpoint.every_steps = min(config.checkpoint.every_steps, steps)
    workdir = out / "gans" / f"{dataset.replace(':', '_')}_{fraction}_{seed}"
    train_and_evaluate(config, workdir, progress=False)
    return workdir


def synthetic(workdir: Path, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels): `per_class` samples of each class of the workdir's EMA generator."""
    from gan_jax.export import ExportSpec, export

    out = workdir / f"synthetic_{per_class}"
    export(str(workdir), out, ExportSpec(0, seed=seed, per_class=per_class, format="npz"),
           progress=False)
    with np.load(out / "data.npz") as data:
        return data["images"], data["labels"]


def scores(out: Path, dataset: str, fraction: float, seed: int, k: int, gan_steps: int,
           clf_steps: int) -> list[dict]:
    """The three arms' test accuracies for one (data set, fraction, seed)."""
    from gan_jax.data.sources import ArraySource, subset_source
    from gan_jax.metrics import classifier

    config = load_config(dataset)
    train, _, test, test_idx, test_name = classifier.train_test_sources(
        dataset, "", config.data.resolution, config.data.channels)
    real = subset_source(train, fraction, seed)
    workdir = train_gan(out, dataset, fraction, seed, gan_steps)
    fake_images, fake_labels = synthetic(workdir, math.ceil(k * real.num_examples / 10), seed)
    both = ArraySource("real+synthetic", np.concatenate([real.images, fake_images]),
                       np.concatenate([real.labels, fake_labels]), 10)
    sets = {"real": real, "real+synthetic": both,
            "synthetic": ArraySource("synthetic", fake_images, fake_labels, 10)}
    return [{"dataset": dataset, "fraction": fraction, "seed": seed, "arm": arm,
             "num_real": real.num_examples, "num_synthetic": len(fake_images) * (arm != "real"),
             "test": test_name, "gan_steps": gan_steps, "classifier_steps": clf_steps,
             "accuracy": classifier.fit_and_test(source, np.arange(source.num_examples), test,
                                                 test_idx, clf_steps, seed)}
            for arm, source in sets.items()]


def table(rows: list[dict]) -> str:
    """Markdown: mean ± std (over seeds) test accuracy per data set, budget and arm."""
    lines = ["| data set | real budget | real images | " + " | ".join(ARMS) + " |",
             "|---|---|---|" + "---|" * len(ARMS)]
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        for fraction in sorted({r["fraction"] for r in rows if r["dataset"] == dataset}):
            cell = {}
            for arm in ARMS:
                acc = [r["accuracy"] for r in rows if (r["dataset"], r["fraction"], r["arm"])
                       == (dataset, fraction, arm)]
                cell[arm] = f"{np.mean(acc):.3f} ± {np.std(acc):.3f} (n={len(acc)})"
            num_real = next(r["num_real"] for r in rows if (r["dataset"], r["fraction"])
                            == (dataset, fraction))
            lines.append(f"| {dataset} | {fraction:.0%} | {num_real} | "
                         + " | ".join(cell[a] for a in ARMS) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict]) -> str:
    """An SVG: test accuracy (mean ± std) against the real budget (log scale), one panel per
    data set, one line per arm."""
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    fractions = sorted({r["fraction"] for r in rows})
    w, h, pad = 320, 240, 40
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w * len(datasets)}" height="{h + 30}"'
           ' font-family="sans-serif" font-size="11">']
    span = max(math.log10(fractions[-1] / fractions[0]), 1e-9)
    for p, dataset in enumerate(datasets):
        x0 = p * w
        x = lambda f: x0 + pad + (w - 2 * pad) * math.log10(f / fractions[0]) / span  # noqa: E731
        y = lambda a: pad / 2 + (h - pad * 1.5) * (1 - a)  # noqa: E731
        svg.append(f'<text x="{x0 + w / 2}" y="12" text-anchor="middle">{dataset}</text>')
        svg.append(f'<line x1="{x0 + pad}" y1="{y(0)}" x2="{x0 + w - pad}" y2="{y(0)}" '
                   'stroke="black"/>')
        svg.append(f'<line x1="{x0 + pad}" y1="{y(0)}" x2="{x0 + pad}" y2="{y(1)}" stroke="black"/>')
        for a in (0, 0.5, 1):
            svg.append(f'<text x="{x0 + pad - 4}" y="{y(a) + 4}" text-anchor="end">{a}</text>')
        for f in fractions:
            svg.append(f'<text x="{x(f)}" y="{y(0) + 14}" text-anchor="middle">{f:.0%}</text>')
        for i, arm in enumerate(ARMS):
            points = []
            for f in fractions:
                acc = [r["accuracy"] for r in rows if (r["dataset"], r["fraction"], r["arm"])
                       == (dataset, f, arm)]
                if acc:
                    points.append((x(f), y(np.mean(acc)), y(np.mean(acc) - np.std(acc)),
                                   y(np.mean(acc) + np.std(acc))))
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py, _, _ in points)
            svg.append(f'<polyline points="{path}" fill="none" stroke="{COLOURS[arm]}"/>')
            svg += [f'<line x1="{px:.1f}" y1="{lo:.1f}" x2="{px:.1f}" y2="{hi:.1f}" '
                    f'stroke="{COLOURS[arm]}"/>' for px, _, lo, hi in points]
            svg.append(f'<text x="{x0 + pad + 110 * i}" y="{h + 25}" fill="{COLOURS[arm]}">'
                       f'{arm}</text>')
    return "\n".join(svg + ["</svg>"]) + "\n"


def two_per_class(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The first two images of each class, in class order (uint8 (20, H, W, C) for 10 classes)."""
    return np.concatenate([images[labels == c][:2] for c in range(10)])


def picture(out: Path, rows: list[dict], folder: Path) -> None:
    """Per data set: two real train images of each class, then two of the exported samples of
    each class from seed 0's GAN at every budget (what the classifier's synthetic arms trained
    on), one row each, classes 0-9 from left to right; written to folder/samples_<data set>.png."""
    import sys
    from gan_jax.metrics import classifier
    sys.path.insert(0, str(HERE.parent))
    from image_rows import save_rows

    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        lines = []
        config = load_config(dataset)
        train = classifier.train_test_sources(dataset, "", config.data.resolution,
                                              config.data.channels)[0]
        name = dataset.split(":")[0]
        lines.append((f"{name} real", two_per_class(train.images, train.labels)))
        for fraction in sorted({r["fraction"] for r in rows if r["dataset"] == dataset}):
            workdir = out / "gans" / f"{dataset.replace(':', '_')}_{fraction}_0"
            exports = sorted(workdir.glob("synthetic_*/data.npz"))
            if exports:
                with np.load(exports[0]) as data:
                    lines.append((f"{name} GAN {fraction:.0%}",
                                  two_per_class(data["images"], data["labels"])))
        save_rows(lines, str(folder / f"samples_{name}.png"), label=110,
                  scale=max(1, 48 // config.data.resolution))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="Folder of the GAN runs and scores.")
    parser.add_argument("--datasets", default="digits:train,fashion_mnist:train")
    parser.add_argument("--fractions", default="0.01,0.1,1.0")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--k", type=int, default=2, help="Synthetic images per real image.")
    parser.add_argument("--gan_steps", type=int, default=3000)
    parser.add_argument("--classifier_steps", type=int, default=1000)
    parser.add_argument("--smoke", action="store_true",
                        help="Tiny: digits, 2 budgets, 2 seeds, 4 GAN and 20 classifier steps.")
    args = parser.parse_args()
    if args.smoke:
        args.datasets, args.fractions, args.seeds = "digits:train", "0.1,1.0", "0,1"
        args.gan_steps, args.classifier_steps = 4, 20
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "scores.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    for dataset in args.datasets.split(","):
        for fraction in map(float, args.fractions.split(",")):
            for seed in map(int, args.seeds.split(",")):
                if any((r["dataset"], r["fraction"], r["seed"]) == (dataset, fraction, seed)
                       for r in rows):
                    continue
                new = scores(out, dataset, fraction, seed, args.k, args.gan_steps,
                             args.classifier_steps)
                with open(path, "a") as f:
                    f.writelines(json.dumps(r) + "\n" for r in new)
                rows += new
                print(" ".join(f"{r['arm']}={r['accuracy']:.3f}" for r in new),
                      dataset, fraction, seed, flush=True)
    report = out if args.smoke else HERE
    (report / "results.md").write_text(table(rows))
    (report / "results.svg").write_text(plot(rows))
    picture(out, rows, report)
    print(table(rows))


if __name__ == "__main__":
    main()
