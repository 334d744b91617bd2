"""results.md of the small-data ADA experiment: scores, wall times and p's trajectory per arm.

    python summarize.py DIR STEPS    # DIR holds eval_ARM.json, wall_ARM.json, metrics_ARM.jsonl
"""

import json
import sys
from pathlib import Path


def main(directory: Path, steps: int) -> None:
    arms = [arm for arm in ("ada", "none") if (directory / f"eval_{arm}.json").is_file()]
    print("| arm | step | FID | KID ×10³ | precision | recall | train wall (s) | load before → after |")
    print("|---|---|---|---|---|---|---|---|")
    for arm in arms:
        result = json.loads((directory / f"eval_{arm}.json").read_text())
        s = result["scores"]
        wall = json.loads((directory / f"wall_{arm}.json").read_text())
        print(f"| {arm} | {result['step']} | {s['fid']:.2f} | {s['kid']:.1f} | {s['precision']:.3f} "
              f"| {s['recall']:.3f} | {wall['train_s']} | {wall['load_before']} → "
              f"{wall['load_after']} |")
    print("\nPer logging interval up to step", steps, "(means over its 16 steps): ADA's p and r_t "
          "= E[sign D(real)], and D's mean logits on reals and fakes.\n")
    print("| arm | step | p | r_t | D(real) | D(fake) |")
    print("|---|---|---|---|---|---|")
    for arm in arms:
        lines = [json.loads(line) for line in (directory / f"metrics_{arm}.jsonl").open()]
        lines = [line for line in lines if line["step"] <= steps]
        shown = sorted({*range(0, len(lines), max(1, len(lines) // 8)), len(lines) - 1})
        for line in (lines[i] for i in shown):
            print(f"| {arm} | {line['step']} | {line.get('ada_p', 0.0):.3f} | "
                  f"{line.get('ada_rt', float('nan')):.3f} | {line['d_real']:.3f} | "
                  f"{line['d_fake']:.3f} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
