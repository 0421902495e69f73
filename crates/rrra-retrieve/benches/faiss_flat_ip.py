"""faiss-cpu IndexFlatIP side of benches/dense_vs_faiss.rs (pip install faiss-cpu numpy).

usage: python3 faiss_flat_ip.py DIR N DIM NQ K THREADS REPS
Reads DIR/queries.f32 (NQ x DIM) and DIR/docs.f32 (N x DIM), raw little-endian f32, and
DIR/rrra_ids.u32 (NQ x K, rrra's result ids, -1 padding never occurs since N >= K). Prints one
line: `qps=<best of REPS> agree=<mean fraction of faiss's top-K ids also in rrra's>`.
"""
import sys
import time

import faiss
import numpy as np


def main() -> None:
    d, n, dim, nq, k, threads, reps = sys.argv[1], *map(int, sys.argv[2:])
    faiss.omp_set_num_threads(threads)
    xq = np.fromfile(f"{d}/queries.f32", dtype=np.float32).reshape(nq, dim)
    xb = np.fromfile(f"{d}/docs.f32", dtype=np.float32).reshape(n, dim)
    index = faiss.IndexFlatIP(dim)
    index.add(xb)
    del xb
    index.search(xq[:64], k)  # warm-up (thread pool, BLAS buffers)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        _, ids = index.search(xq, k)
        best = min(best, time.perf_counter() - t)
    ours = np.fromfile(f"{d}/rrra_ids.u32", dtype=np.uint32).reshape(nq, k)
    agree = np.mean([len(set(a) & set(b)) / k for a, b in zip(ids.tolist(), ours.tolist())])
    print(f"qps={nq / best:.1f} agree={agree:.5f}")


if __name__ == "__main__":
    main()
