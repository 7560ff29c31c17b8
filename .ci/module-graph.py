#!/usr/bin/env python3
"""The import structure of the actors crate (docs/ACTORS.md, "Layers").

Reads actors/src, takes every `crate::X` path outside comments and test
code as an import of top-level module X, and fails when
  - modules import each other in a circle, other than the actor pairs
    that must talk both ways (ALLOWED_CIRCLES), or
  - a plain-code module (PLAIN) imports an actor module.
Prints the offending imports with the files they are in.
"""
import collections
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(__file__), "..", "actors", "src")
# Plain code and infrastructure: no actors in them, used by the actors.
PLAIN = {
    "admission", "backoff", "busy_poll", "frame_writer", "hlc", "input", "links", "listen",
    "log_limit", "matcher", "metrics", "names", "routed", "sd_notify", "services",
    "settings", "sync", "tls", "uri",
}
# Actors that send each other messages, both ways: the supervisor and the
# peer links, the supervisor and the subscriptions.
ALLOWED_CIRCLES = [{"peer", "subscription", "supervisor"}]


def top_modules():
    mods = set()
    for name in os.listdir(ROOT):
        if name.endswith(".rs") and name != "lib.rs":
            mods.add(name[:-3])
        elif os.path.isdir(os.path.join(ROOT, name)):
            mods.add(name)
    return mods


def imports(mods):
    edges = collections.defaultdict(set)
    where = collections.defaultdict(set)
    for folder, _, files in os.walk(ROOT):
        for name in files:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, ROOT)
            if not name.endswith(".rs") or rel == "lib.rs":
                continue
            if "tests" in rel.split(os.sep) or name in ("tests.rs", "test_support.rs"):
                continue
            module = rel.split(os.sep)[0].removesuffix(".rs")
            text = open(path, encoding="utf-8").read().split("#[cfg(test)]")[0]
            text = "\n".join(l for l in text.splitlines() if not l.strip().startswith("//"))
            found = set(re.findall(r"crate::(\w+)", text))
            for block in re.findall(r"use crate::\{(.*?)\};", text, re.S):
                depth, item = 0, ""
                for ch in block + ",":
                    depth += ch == "{"
                    depth -= ch == "}"
                    if ch == "," and depth == 0:
                        found.add(item.strip().split("::")[0].strip())
                        item = ""
                    else:
                        item += ch
            for target in found & mods - {module}:
                edges[module].add(target)
                where[(module, target)].add(os.path.relpath(path, os.path.join(ROOT, "..", "..")))
    return edges, where


def circles(mods, edges):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in sorted(mods):
        if v not in index:
            visit(v)
    return out


def main():
    mods = top_modules()
    edges, where = imports(mods)
    bad = []
    for comp in circles(mods, edges):
        if not any(comp <= allowed for allowed in ALLOWED_CIRCLES):
            bad.append(f"import circle: {', '.join(sorted(comp))}")
            for a in sorted(comp):
                for b in sorted(edges[a] & comp):
                    bad.append(f"  {a} -> {b}: {', '.join(sorted(where[(a, b)]))}")
    for a in sorted(PLAIN & mods):
        for b in sorted(edges[a] - PLAIN):
            bad.append(f"plain code imports an actor module: {a} -> {b}: "
                       f"{', '.join(sorted(where[(a, b)]))}")
    for line in bad:
        print(line)
    if bad:
        sys.exit(1)
    print(f"actors crate: {len(mods)} modules, no import circle beyond the allowed actor pairs, "
          f"no plain-code module importing an actor module")


main()
