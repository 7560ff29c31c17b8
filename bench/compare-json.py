#!/usr/bin/env python3
"""Compare `catalogue bench --json` results, row by row.

Usage:
  bench/compare-json.py BASE.json OTHER.json [OTHER.json ...]
  bench/compare-json.py --all BASE.json OTHER.json

Each argument may be NAME=PATH to name its column (default: the file name
without .json), and PATH may join several files with '+' (their rows
together, e.g. a peer's single-server and cluster runs). Rows are matched by workload and row label. For every row
of BASE and every OTHER:
  thr x  = BASE's rate / OTHER's rate (the row's first figure ending in
           _per_s: events/s, sessions/s...); above 1, BASE is faster;
  p99 x  = OTHER's p99 / BASE's p99; above 1, BASE has the lower tail.
With --all (two files): every figure of every common row, both values and
OTHER / BASE.
Standard library only.
"""
import json
import os
import sys


def load(arg):
    name, _, paths = arg.rpartition("=")
    paths = paths.split("+")
    if not name:
        name = os.path.basename(paths[0]).removesuffix(".json")
    doc, rows, order = {}, {}, []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            part = json.load(f)
        for key in ("target", "build", "load"):
            if key in doc and doc[key] != part.get(key):
                doc[key] = f"{doc[key]}; {part.get(key)}"
            else:
                doc[key] = part.get(key)
        for r in part.get("rows", []):
            key = (r["workload"], r["row"])
            if key not in rows:
                order.append(key)
            rows[key] = r["figures"]
    return name, doc, rows, order


def rate(figures):
    for key, value in figures.items():
        if key.endswith("_per_s"):
            return value
    return None


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}"


def compare(base, others):
    name, doc, rows, order = base
    print(f"# {name}: {doc.get('target')} ({doc.get('build')}, load {doc.get('load')})")
    for other_name, other_doc, _, _ in others:
        print(f"# {other_name}: {other_doc.get('target')} ({other_doc.get('build')}, load {other_doc.get('load')})")
    width = max(len(other_name) for other_name, *_ in others) + 7
    header = f"{'workload':<10} {'row':<16}"
    for other_name, *_ in others:
        header += f" {'thr x ' + other_name:>{width}} {'p99 x ' + other_name:>{width}}"
    print(header)
    for key in order:
        figures = rows[key]
        line = f"{key[0]:<10} {key[1]:<16}"
        shown = False
        for _, _, other_rows, _ in others:
            theirs = other_rows.get(key)
            if theirs is None:
                line += f" {'-':>{width}} {'-':>{width}}"
                continue
            shown = True
            line += f" {ratio(rate(figures), rate(theirs)):>{width}}"
            line += f" {ratio(theirs.get('p99_us'), figures.get('p99_us')):>{width}}"
        if shown:
            print(line)


def compare_all(base, other):
    name, _, rows, order = base
    other_name, _, other_rows, _ = other
    print(f"{'workload':<10} {'row':<16} {'figure':<20} {name:>14} {other_name:>14} {'ratio':>8}")
    for key in order:
        theirs = other_rows.get(key)
        if theirs is None:
            continue
        for figure, value in rows[key].items():
            line = f"{key[0]:<10} {key[1]:<16} {figure:<20} {value:>14.1f}"
            if figure in theirs:
                line += f" {theirs[figure]:>14.1f} {ratio(theirs[figure], value):>8}"
            print(line)


def main(argv):
    every = "--all" in argv
    files = [a for a in argv if a != "--all"]
    if len(files) < 2 or (every and len(files) != 2):
        sys.exit(__doc__)
    loaded = [load(f) for f in files]
    if every:
        compare_all(loaded[0], loaded[1])
    else:
        compare(loaded[0], loaded[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
