"""Opens rrra Parquet artifacts with pyarrow and polars, as a user would, and prints what
each library sees as JSON: {path: {"pyarrow": {...}, "polars": {...}}}."""
import json
import sys

import polars as pl
import pyarrow.parquet as pq

out = {}
for path in sys.argv[1:]:
    table = pq.read_table(path)
    frame = pl.read_parquet(path)
    out[path] = {
        "pyarrow": {
            "rows": table.num_rows,
            "columns": table.column_names,
            "types": [str(t) for t in table.schema.types],
            "metadata": {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()
                         if k.decode().startswith("rrra.")},
            "first": {k: v[0] for k, v in table.slice(0, 1).to_pydict().items()},
        },
        "polars": {
            "rows": frame.height,
            "columns": frame.columns,
            "first": frame.head(1).to_dicts()[0],
        },
    }
print(json.dumps(out))
