"""Reads every Delta table of the public lake with Python deltalake and prints
{table: {"rows": n, "columns": [...], "source_version": v}} as JSON, v being the source
version the publisher recorded (application transaction vallee-publish/<id>).

Exit code 3 when deltalake is not installed (the Rust test decides whether that is allowed).
"""
import json
import os
import pathlib
import sys

try:
    from deltalake import DeltaTable
except ImportError:
    sys.exit(3)

public = pathlib.Path(sys.argv[1])
out = {}
for table_dir in sorted(p for p in public.iterdir() if (p / "_delta_log").is_dir()):
    table = DeltaTable(str(table_dir))
    data = table.to_pyarrow_table()
    out[table_dir.name] = {
        "rows": data.num_rows,
        "columns": data.column_names,
        "source_version": table.transaction_version(f"vallee-publish/{table_dir.name}"),
    }
print(json.dumps(out))
sys.stdout.flush()
os._exit(0)
