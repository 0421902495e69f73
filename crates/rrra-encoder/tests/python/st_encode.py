"""Loads an exported rrra model folder with sentence-transformers and prints the embeddings
of the texts in a JSON file, as JSON on stdout: the test of `train.rs` compares them with
rrra's own embeddings of the same folder.

    python st_encode.py MODEL_DIR TEXTS_JSON
"""

import json
import sys

from sentence_transformers import SentenceTransformer


def main() -> None:
    model_dir, texts_path = sys.argv[1], sys.argv[2]
    with open(texts_path, encoding="utf-8") as f:
        texts = json.load(f)
    model = SentenceTransformer(model_dir, device="cpu")
    embeddings = model.encode(texts, convert_to_numpy=True)
    json.dump(
        {"modules": [type(m).__name__ for m in model], "embeddings": embeddings.tolist()},
        sys.stdout,
    )


if __name__ == "__main__":
    main()
