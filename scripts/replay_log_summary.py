#!/usr/bin/env python3
"""Summarise the replay of finished runs from their log.jsonl: replay batch sizes, the tasks
replayed, MSSR's intervals (min, max, how often they rose and fell), loss-driven replay's probes
and accuracy-supervised replay's checks (how many triggered or flagged, how many were replayed),
and the spend against the budget. Usage: python3 scripts/replay_log_summary.py RUN_DIR [RUN_DIR ...]"""
import collections
import json
import pathlib
import sys


def summarise(run: pathlib.Path) -> str:
    events = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    replays = [e for e in events if e["type"] == "replay"]
    sizes = collections.Counter(e["n"] for e in replays)
    tasks = collections.Counter()
    for e in replays:
        if "samples_by_task" in e:  # logs since 2026-12-07: the replayed samples' tasks
            tasks.update({int(t): n for t, n in e["samples_by_task"].items()})
        elif e["task"] is not None:  # older logs: single-task batches only
            tasks[e["task"]] += e["n"]
    intervals = [e for e in events if e["type"] == "interval"]
    run_json = json.loads((run / "run.json").read_text()) if (run / "run.json").exists() else {}
    scheduler = run_json.get("method_config", {}).get("replay", {}).get("scheduler", {})
    initial = scheduler.get("initial_interval", 4.0)  # I_0, each task's interval when it ends
    rises = falls = 0
    last = {}
    for e in intervals:
        before = last.get(e["task"], initial)
        rises += e["interval"] > before
        falls += e["interval"] < before
        last[e["task"]] = e["interval"]
    metrics = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").exists() else {}
    spent = metrics.get("cost", {}).get("replayed_samples")
    budget = metrics.get("replay_budget")
    lines = [f"{run}:",
             f"  replay batches {len(replays)}, sizes {dict(sorted(sizes.items()))}, samples {sum(e['n'] for e in replays)} (spent {spent} of budget {budget})",
             f"  tasks replayed {len(tasks)} (samples per task): {dict(sorted(tasks.items()))}" if tasks or not replays
             else "  tasks replayed: not logged (batches drawn from all past tasks, before samples_by_task was logged)"]
    if replays:
        due = [e["reason"]["due_step"] < e["step"] for e in replays
               if isinstance(e.get("reason"), dict) and "due_step" in e["reason"]]
        waited = f"; {sum(due)} of {len(due)} waited on the budget (due_step before the step)" if due else ""
        lines.append(f"  replay steps {[e['step'] for e in replays]}{waited}")
    if intervals:
        values = [e["interval"] for e in intervals]
        lines.append(f"  intervals: {len(intervals)} updates, min {min(values):g}, max {max(values):g}, rose {rises}, fell {falls} (against the previous interval, I_0 = {initial:g} first)")
        lines.append("  last interval per task: " + ", ".join(f"{t}: {v:g}" for t, v in sorted(last.items())))
    probes = [e for e in events if e["type"] == "probe"]  # loss-driven, since 2026-12-07
    if probes:
        triggered = [p for p in probes if p["triggered"]]
        short = [p["step"] for p in triggered if not p["replayed"]]
        ratios = [p["probe_loss"] / p["reference_loss"] for p in probes if p["reference_loss"] > 0]
        lines.append(f"  probes {len(probes)}, triggered {len(triggered)}, replayed {len(triggered) - len(short)}"
                     + (f" (no whole batch in the paced budget at {len(short)} triggers, steps {short[0]}-{short[-1]})" if short else "")
                     + (f"; probe/reference loss min {min(ratios):.2f}, max {max(ratios):.2f}" if ratios else ""))
    checks = [e for e in events if e["type"] == "check"]  # accuracy-supervised, since 2026-12-07
    if checks:
        flagged = collections.Counter(c["task"] for e in checks for c in e["scores"] if c["flagged"])
        lines.append(f"  checks {len(checks)}, tasks flagged (times): {dict(sorted(flagged.items()))}")
    return "\n".join(lines)


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(summarise(pathlib.Path(arg)))
