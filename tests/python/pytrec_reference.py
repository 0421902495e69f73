#!/usr/bin/env python3
"""Reference per-query values from pytrec_eval for rrra-eval's parity tests and benchmark.

Usage:
    pytrec_reference.py QRELS RUN MEASURE [MEASURE ...] [--relevance-level L] [--time N]

QRELS: TREC qrels (`qid 0 docid grade`), or BEIR TSV (`qid docid grade`, header allowed).
RUN: TREC run (`qid Q0 docid rank score tag`); the rank column is ignored.
MEASURE: trec_eval names (`ndcg_cut.10`, `P.10`, `recall.100`, `map`, `recip_rank`) and
`recip_rank.K` (MRR@K). trec_eval has no reciprocal-rank cutoff: MRR@K is pytrec_eval's
`recip_rank` on the run truncated to its top K in trec_eval 9's order (score as a C float,
descending, then docid descending by strcmp).

Prints one JSON object {qid: {measure: value}} keyed by the names as given. With --time,
prints instead {"seconds": [s1, ..., sN], "means": {measure: mean}}: the wall time of the
RelevanceEvaluator.evaluate calls alone (files already parsed, runs truncated) in each of N
repetitions, and the means over the evaluated queries as a cross-check.

Exits with status 3 when pytrec_eval cannot be imported, 2 on bad input.
"""

import argparse
import json
import sys
import time

try:
    import numpy as np
    import pytrec_eval
except ImportError as err:
    print(
        f"pytrec_eval cannot be imported by {sys.executable} ({err}): "
        "install it with `pip install pytrec-eval-terrier`",
        file=sys.stderr,
    )
    sys.exit(3)


def fail(message):
    print(message, file=sys.stderr)
    sys.exit(2)


def read_qrels(path):
    qrels = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) == 4:
                qid, _, docid, grade = fields
            elif len(fields) == 3:
                qid, docid, grade = fields
            else:
                fail(f"{path}:{number}: expected 3 or 4 fields")
            try:
                grade = int(grade)
            except ValueError:
                if number == 1:
                    continue  # a header line
                fail(f"{path}:{number}: grade {grade!r} is not an integer")
            judged = qrels.setdefault(qid, {})
            if docid in judged:
                fail(f"{path}:{number}: {qid} {docid} judged twice (trec_eval rejects it)")
            judged[docid] = grade
    return qrels


def read_run(path):
    run = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 6:
                fail(f"{path}:{number}: expected 6 fields")
            qid, _, docid, _, score, _ = fields
            ranked = run.setdefault(qid, {})
            if docid in ranked:
                fail(f"{path}:{number}: {qid} {docid} retrieved twice (trec_eval rejects it)")
            ranked[docid] = float(score)
    return run


def truncate(run, k):
    """Each query's top k in trec_eval 9's order."""

    def top(ranked):
        order = sorted(ranked, key=lambda d: (np.float32(ranked[d]), d), reverse=True)
        return {d: ranked[d] for d in order[:k]}

    return {qid: top(ranked) for qid, ranked in run.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("qrels")
    parser.add_argument("run")
    parser.add_argument("measures", nargs="+")
    parser.add_argument("--relevance-level", type=int, default=1)
    parser.add_argument("--time", type=int, metavar="N", help="time N repetitions instead")
    args = parser.parse_args()

    qrels = read_qrels(args.qrels)
    run = read_run(args.run)

    # One evaluator for all measures but MRR@K, their cutoffs merged per measure as
    # pytrec_eval expects (`ndcg_cut.5,10`); one evaluator per MRR@K on the truncated run.
    cutoffs = {}  # trec_eval measure -> cutoffs
    plain = set()
    rr_cutoffs = set()
    for name in args.measures:
        base, _, param = name.partition(".")
        if base == "recip_rank" and param:
            rr_cutoffs.add(int(param))
        elif param:
            cutoffs.setdefault(base, set()).add(int(param))
        else:
            plain.add(base)
    main_measures = plain | {
        f"{base}.{','.join(map(str, sorted(ks)))}" for base, ks in cutoffs.items()
    }

    jobs = []  # (evaluator, run, {output name: pytrec_eval key})
    level = args.relevance_level
    if main_measures:
        keys = {n: n.replace(".", "_") for n in args.measures if not n.startswith("recip_rank.")}
        jobs.append((pytrec_eval.RelevanceEvaluator(qrels, main_measures, level), run, keys))
    for k in sorted(rr_cutoffs):
        evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}, level)
        jobs.append((evaluator, truncate(run, k), {f"recip_rank.{k}": "recip_rank"}))

    seconds = []
    for _ in range(args.time or 1):
        start = time.perf_counter()
        evaluated = [evaluator.evaluate(ranked) for evaluator, ranked, _ in jobs]
        seconds.append(time.perf_counter() - start)

    results = {}
    for (_, _, keys), values in zip(jobs, evaluated):
        for qid, measured in values.items():
            out = results.setdefault(qid, {})
            for name, key in keys.items():
                out[name] = measured[key]
    if args.time:
        means = {
            name: sum(r[name] for r in results.values()) / max(len(results), 1)
            for name in args.measures
        }
        print(json.dumps({"seconds": seconds, "means": means}))
    else:
        print(json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    main()
