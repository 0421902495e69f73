"""Peer for the encoding benchmark: Hugging Face transformers (PyTorch fp32, no autocast, on
CPU or CUDA) embeds the same SciFact documents as `examples/throughput.rs`, mean-pooled and
normalised, with dynamic padding, truncation at MAX_LEN and texts sorted by length as rrra does.

usage: torch_encode.py MODEL_DIR DOCS BATCH MAX_LEN THREADS [DEVICE=cpu]

DEVICE is a torch device (`cpu`, `cuda`, `cuda:0`); the embeddings are copied back to the
host, as rrra returns them, so GPU timings include the transfer and synchronisation.
"""

import json
import sys
import time

import torch
from transformers import AutoModel, AutoTokenizer

model_dir, docs, batch, max_len, threads = sys.argv[1], *map(int, sys.argv[2:6])
device = torch.device(sys.argv[6] if len(sys.argv) > 6 else "cpu")
torch.set_num_threads(threads)
corpus = __file__.rsplit("/crates/", 1)[0] + "/../shared/data/scifact/corpus.jsonl"
texts = []
with open(corpus) as f:
    for line in f:
        d = json.loads(line)
        texts.append(f"{d['title']} {d['text']}")
        if len(texts) == docs:
            break
tok = AutoTokenizer.from_pretrained(model_dir)
model = AutoModel.from_pretrained(model_dir).eval().to(device)
lengths = [len(tok(t, truncation=True, max_length=max_len)["input_ids"]) for t in texts]
order = sorted(range(len(texts)), key=lambda i: -lengths[i])


def encode(idx):
    with torch.inference_mode():
        for s in range(0, len(idx), batch):
            part = [texts[i] for i in idx[s:s + batch]]
            enc = tok(part, padding=True, truncation=True, max_length=max_len, return_tensors="pt")
            enc = {k: v.to(device) for k, v in enc.items()}
            out = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (out * mask).sum(1) / mask.sum(1)
            torch.nn.functional.normalize(pooled, dim=-1).cpu()


encode(order[:batch])  # warm-up
start = time.perf_counter()
encode(order)
secs = time.perf_counter() - start
print(f"torch {torch.__version__} ({device}): {len(texts)} docs, batch {batch}, "
      f"max_len {max_len}, {threads} threads: {secs:.1f} s, {len(texts) / secs:.2f} docs/s")
