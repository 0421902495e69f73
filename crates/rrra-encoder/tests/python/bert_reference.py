"""Independent reference for the rrra-encoder parity test: a plain numpy (float64) BERT
forward pass over the same model.safetensors, one text at a time (no padding), with
masked-mean or CLS pooling and optional L2 normalisation.

usage: bert_reference.py MODEL_DIR MAX_LEN POOLING(mean|cls) NORMALIZE(0|1) TEXTS.json OUT.json

TEXTS.json is a JSON list of strings. OUT.json gets {"dim", "truncated", "embeddings"},
where "truncated" counts the texts longer than MAX_LEN tokens before truncation.
"""

import json
import math
import sys

try:
    import numpy as np
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer
except ImportError as e:  # the Rust test turns this exit code into a clear failure
    print(f"missing python package: {e}; run: pip install numpy safetensors tokenizers",
          file=sys.stderr)
    sys.exit(3)


def erf(x):
    # Abramowitz & Stegun 7.1.26: absolute error below 1.5e-7, far under float32 noise.
    t = 1.0 / (1.0 + 0.3275911 * np.abs(x))
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741
                + t * (-1.453152027 + t * 1.061405429))))
    return np.sign(x) * (1.0 - poly * np.exp(-x * x))


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def main():
    model_dir, max_len, pooling, normalize, texts_path, out_path = sys.argv[1:7]
    max_len, normalize = int(max_len), normalize == "1"
    cfg = json.load(open(f"{model_dir}/config.json"))
    raw = load_file(f"{model_dir}/model.safetensors")
    w = {k.removeprefix("bert."): v.astype(np.float64) for k, v in raw.items()}
    heads, eps = cfg["num_attention_heads"], cfg.get("layer_norm_eps", 1e-12)
    act = cfg.get("hidden_act", "gelu")

    def gelu(x):
        if act == "gelu":
            return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))

    full = Tokenizer.from_file(f"{model_dir}/tokenizer.json")
    full.no_padding()
    full.no_truncation()
    tok = Tokenizer.from_file(f"{model_dir}/tokenizer.json")
    tok.no_padding()
    tok.enable_truncation(max_len)

    texts = json.load(open(texts_path))
    out, truncated = [], 0
    for text in texts:
        truncated += len(full.encode(text).ids) > max_len
        enc = tok.encode(text)
        ids, types = np.array(enc.ids), np.array(enc.type_ids)
        n = len(ids)
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][:n]
             + w["embeddings.token_type_embeddings.weight"][types])
        x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
        for i in range(cfg["num_hidden_layers"]):
            p = f"encoder.layer.{i}."

            def lin(name, h):
                return h @ w[p + name + ".weight"].T + w[p + name + ".bias"]

            d = x.shape[1] // heads
            q, k, v = (lin(f"attention.self.{m}", x).reshape(n, heads, d).transpose(1, 0, 2)
                       for m in ("query", "key", "value"))
            s = q @ k.transpose(0, 2, 1) / math.sqrt(d)
            s = np.exp(s - s.max(-1, keepdims=True))
            ctx = (s / s.sum(-1, keepdims=True)) @ v
            ctx = ctx.transpose(1, 0, 2).reshape(n, -1)
            x = layer_norm(lin("attention.output.dense", ctx) + x,
                           w[p + "attention.output.LayerNorm.weight"],
                           w[p + "attention.output.LayerNorm.bias"], eps)
            h = gelu(lin("intermediate.dense", x))
            x = layer_norm(lin("output.dense", h) + x, w[p + "output.LayerNorm.weight"],
                           w[p + "output.LayerNorm.bias"], eps)
        e = x.mean(0) if pooling == "mean" else x[0]
        if normalize:
            e = e / max(np.linalg.norm(e), 1e-12)
        out.append(e.tolist())
    json.dump({"dim": int(x.shape[1]), "truncated": int(truncated), "embeddings": out},
              open(out_path, "w"))


if __name__ == "__main__":
    main()
