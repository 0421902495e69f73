#!/usr/bin/env python3
"""Cuts the shipped MS MARCO sample (data/msmarco-dl19-dl20/) from the TREC DL 2019 + 2020
judged-query pools (28,655 passages, ../shared/data/msmarco-passage-dl19-dl20-pools).

    python3 data/msmarco-dl19-dl20/cut.py SRC_DIR OUT_DIR [--size N] [--seed S]

Deterministic (standard library only, no RNG state): the sample holds
  1. every pooled passage judged (any grade) for a DL19 query (the evaluated year),
  2. every pooled passage judged relevant (grade >= 2) for a DL20 query (training positives),
  3. the rest of the pool ranked by sha256("<seed>\\t<pid>") (hex, ascending), the first
     ones taken until the sample holds N passages.
Passages keep the source's order; qrels keep only rows whose passage is in the sample;
queries are copied unchanged. SHA256SUMS lists every written file.
"""
import argparse
import hashlib
import os
import shutil

p = argparse.ArgumentParser()
p.add_argument("src")
p.add_argument("out")
p.add_argument("--size", type=int, default=7000)
p.add_argument("--seed", type=int, default=42)
a = p.parse_args()


def qrels(year):
    with open(os.path.join(a.src, f"qrels.{year}-passage.txt"), encoding="utf-8") as f:
        return [line.split() for line in f if line.strip()]


pool = []
with open(os.path.join(a.src, "collection.tsv"), encoding="utf-8") as f:
    for line in f:
        pool.append((line.split("\t", 1)[0], line))
in_pool = {pid for pid, _ in pool}
dl19, dl20 = qrels("dl19"), qrels("dl20")

keep = {pid for _, _, pid, _ in dl19 if pid in in_pool}
keep |= {pid for _, _, pid, g in dl20 if pid in in_pool and int(g) >= 2}
if len(keep) > a.size:
    raise SystemExit(f"--size {a.size} is below the {len(keep)} judged passages kept")
rest = sorted(
    (pid for pid, _ in pool if pid not in keep),
    key=lambda pid: hashlib.sha256(f"{a.seed}\t{pid}".encode()).hexdigest(),
)
keep |= set(rest[: a.size - len(keep)])

os.makedirs(a.out, exist_ok=True)
written = []


def write(name, lines):
    tmp = os.path.join(a.out, name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.writelines(lines)
    os.replace(tmp, os.path.join(a.out, name))
    written.append(name)


write("collection.tsv", [line for pid, line in pool if pid in keep])
for year, rows in (("dl19", dl19), ("dl20", dl20)):
    write(f"qrels.{year}-passage.txt", [" ".join(r) + "\n" for r in rows if r[2] in keep])
    name = f"queries.{year}.tsv"
    shutil.copyfile(os.path.join(a.src, name), os.path.join(a.out, name))
    written.append(name)

sums = []
for name in sorted(written):
    with open(os.path.join(a.out, name), "rb") as f:
        sums.append(f"{hashlib.sha256(f.read()).hexdigest()}  {name}\n")
write("SHA256SUMS", sums)
print(f"{len(keep)} passages -> {a.out}")
