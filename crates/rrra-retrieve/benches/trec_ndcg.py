"""Outside check of a TREC run with pytrec_eval (pip install pytrec-eval-terrier).

usage: python3 trec_ndcg.py QRELS.tsv RUN.trec [MEASURE ...]   (default: ndcg_cut_10)
QRELS is BEIR's tsv (header `query-id corpus-id score`); prints the mean of each measure
over the queries that have judgements.
"""
import sys

import pytrec_eval


def main() -> None:
    qrels_path, run_path, *measures = sys.argv[1:]
    measures = measures or ["ndcg_cut_10"]
    qrels: dict[str, dict[str, int]] = {}
    with open(qrels_path, newline="") as f:
        next(f)
        for line in f:
            qid, did, grade = line.split()
            qrels.setdefault(qid, {})[did] = int(grade)
    run: dict[str, dict[str, float]] = {}
    with open(run_path) as f:
        for line in f:
            qid, _, did, _, score, _ = line.split()
            run.setdefault(qid, {})[did] = float(score)
    per_query = pytrec_eval.RelevanceEvaluator(qrels, set(measures)).evaluate(run)
    for m in measures:
        values = [v[m] for v in per_query.values()]
        print(f"{m}\t{sum(values) / len(qrels):.4f}\t({len(values)} of {len(qrels)} queries)")


if __name__ == "__main__":
    main()
