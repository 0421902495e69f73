"""Peer for the training benchmark: sentence-transformers (PyTorch fp32, CPU) trains the same
model on the same SciFact (claim, abstract, fixed negative) triplets as
`examples/train_throughput.rs`: MultipleNegativesRankingLoss with scale 20 (= 1/0.05, the
InfoNCE temperature rrra uses) over the positive, the hard negative and in-batch documents,
AdamW (lr 2e-5, weight decay 0.01), gradient clipping at 1.0, max_seq_length MAX_LEN.
The first step is a warm-up and is not timed.

usage: st_train.py MODEL_DIR STEPS BATCH MAX_LEN THREADS
"""

import json
import resource
import sys
import time

import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.losses import MultipleNegativesRankingLoss

model_dir, steps, batch, max_len, threads = sys.argv[1], *map(int, sys.argv[2:6])
torch.set_num_threads(threads)
torch.manual_seed(1)
root = __file__.rsplit("/crates/", 1)[0] + "/../shared/data/scifact"


def jsonl(name, field):
    with open(f"{root}/{name}") as f:
        return [(d["_id"], field(d)) for d in map(json.loads, f)]


queries = jsonl("queries.jsonl", lambda d: d["text"])
docs = jsonl("corpus.jsonl", lambda d: f"{d['title']} {d['text']}")
q_index = {q: i for i, (q, _) in enumerate(queries)}
d_index = {d: i for i, (d, _) in enumerate(docs)}
triplets = []
with open(f"{root}/qrels/train.tsv") as f:
    next(f)
    for line in f:
        q, d = line.split("\t")[:2]
        p = d_index[d]
        triplets.append((queries[q_index[q]][1], docs[p][1], docs[(p + 2591) % len(docs)][1]))
triplets = triplets[: steps * batch]

model = SentenceTransformer(model_dir, device="cpu")
model.max_seq_length = max_len
model.train()
loss_fn = MultipleNegativesRankingLoss(model, scale=20.0)
opt = torch.optim.AdamW(model.parameters(), lr=2e-5, weight_decay=0.01)
times, losses = [], []
for s in range(steps):
    rows = triplets[s * batch : (s + 1) * batch]
    start = time.perf_counter()
    features = [model.tokenize([r[i] for r in rows]) for i in range(3)]
    loss = loss_fn(features, None)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad()
    times.append(time.perf_counter() - start)
    losses.append(round(loss.item(), 4))
timed = times[1:]
per_s = len(timed) * batch / sum(timed)
peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(
    f"sentence-transformers train: batch {batch}, max_len {max_len}, {len(timed)} timed steps: "
    f"{per_s:.3f} examples/s, peak RSS {peak_mib:.0f} MiB, losses {losses}"
)
