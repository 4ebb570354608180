#!/usr/bin/env python3
"""Generalist vs specialists: each task's score of the generalist as a percentage of its
specialist's (the OFASys paper reports about 95% retention).

  python3 tools/compare_specialists.py runs/demo/checkpoint_best/eval_test.json runs/specialist_*/eval_test.json

Inputs are the JSON files build/eval writes. For WER (lower is better) the retention is
specialist / generalist. Prints a Markdown table.
"""
import json
import sys


def primary(metrics):
    for name in ("accuracy", "bleu", "iou_acc", "wer", "exact_match", "episode_return", "cider"):
        if name in metrics:
            return name, metrics[name]
    name = sorted(metrics)[0]
    return name, metrics[name]


def main(argv):
    if len(argv) < 3:
        print(__doc__)
        return 2
    general = json.load(open(argv[1]))
    special = {}
    for path in argv[2:]:
        for task, r in json.load(open(path)).items():
            if isinstance(r, dict) and "metrics" in r:
                special[task] = r["metrics"]
    print("| task | metric | generalist | specialist | retention |")
    print("|---|---|---|---|---|")
    ratios = []
    for task, r in general.items():
        if not isinstance(r, dict) or "metrics" not in r or task not in special:
            continue
        name, g = primary(r["metrics"])
        s = special[task].get(name)
        if s is None:
            continue
        if name == "wer":
            ret = s / g if g > 0 else float("nan")
        elif name == "episode_return":
            # Returns are negative (0 is perfect): the specialist's cost over the generalist's.
            ret = s / g if g != 0 else float("nan")
        else:
            ret = g / s if s > 0 else float("nan")
        ratios.append(ret)
        print(f"| {task} | {name} | {g:.4f} | {s:.4f} | {100 * ret:.1f}% |")
    if ratios:
        good = [x for x in ratios if x == x]
        print(f"\nmean retention over {len(good)} tasks: {100 * sum(good) / len(good):.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
