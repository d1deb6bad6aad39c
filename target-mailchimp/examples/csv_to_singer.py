"""A minimal CSV "tap": prints a CSV file as one Singer stream named after the file.

Stands in for any tap (e.g. MeltanoLabs tap-csv) in the README's stream-maps example:
    python examples/csv_to_singer.py examples/people.csv \
        | target-mailchimp --config examples/people-to-members.config.json
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path


def main(path: str) -> None:
    stream = Path(path).stem
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    columns = list(rows[0]) if rows else []
    schema = {"type": "object",
              "properties": {c: {"type": ["string", "null"]} for c in columns}}
    print(json.dumps({"type": "SCHEMA", "stream": stream, "schema": schema,
                      "key_properties": columns[:1]}))
    for row in rows:
        print(json.dumps({"type": "RECORD", "stream": stream, "record": row}))


if __name__ == "__main__":
    main(sys.argv[1])
