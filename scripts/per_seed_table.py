#!/usr/bin/env python3
"""The per-seed table of docs/results.md's powered-suite section: for every complete run under
RESULTS/SUITE (default experiments/results-power/power), AA, F, replayed samples, ↓F on the
rescored probe and the rescored text-loss change, and wall seconds, seed by seed, as a Markdown
table. The report (`cargo xtask report`) gives means, spreads and intervals; this lists the
seeds behind them. Usage: python3 scripts/per_seed_table.py [SUITE_DIR]"""
import collections
import glob
import json
import os
import sys

PROBE = "arc-easy-probe-256"
CORPUS = "corpus-openwebtext-64"
ORDER = ["sequential", "fixed-replay", "mssr", "loss-driven", "loss-driven-matched",
         "accuracy-supervised", "sam", "xsam", "mssr-xsam", "kl", "kl-corpus"]


def main(root: str) -> None:
    rescored = {}
    for name in (PROBE, CORPUS):
        path = os.path.join(root, "rescore", f"{name}.json")
        if os.path.exists(path):
            for r in json.load(open(path))["runs"]:
                rescored[(name, r["method"], r["seed"])] = r["forgetting"]
    rows = collections.defaultdict(list)
    for d in sorted(glob.glob(os.path.join(root, "*", "[0-9]*"))):
        run = json.load(open(os.path.join(d, "run.json")))
        if run.get("status") != "complete":
            continue
        m = json.load(open(os.path.join(d, "metrics.json")))
        method, seed = run["method"], run["seed"]
        c = m["cost"]
        rows[method].append((seed, m["aa"], m["forgetting"], c.get("replayed_samples", 0),
                             rescored.get((PROBE, method, seed)),
                             rescored.get((CORPUS, method, seed)), c.get("wall_seconds")))
    f3 = lambda x: "–" if x is None else f"{x:.3f}"
    signed = lambda x: "–" if x is None else f"{x:+.3f}"
    print("| method | seeds | AA | F | replayed | ↓F (probe) | text-loss change | wall s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for method in ORDER + sorted(m for m in rows if m not in ORDER):
        if method not in rows:
            continue
        r = sorted(rows[method])
        col = lambda k, f: " / ".join(f(x[k]) for x in r)
        print(f"| {method} | {', '.join(str(x[0]) for x in r)} | {col(1, f3)} | {col(2, f3)} | "
              f"{col(3, lambda v: str(int(v)))} | {col(4, signed)} | {col(5, signed)} | "
              f"{col(6, lambda v: str(round(v)))} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "experiments/results-power/power")
