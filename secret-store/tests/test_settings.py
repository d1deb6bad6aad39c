"""Numbers given as text (environment variables, `kind: string`) become numbers."""

from __future__ import annotations

from secret_store.settings import coerce_numbers

SCHEMA = {"properties": {
    "timeout": {"type": ["number", "null"]},
    "tries": {"type": ["integer"]},
    "name": {"type": ["string"]},
    "either": {"type": ["number", "string"]},
}}


def test_numeric_text_becomes_a_number_of_the_schema_type() -> None:
    config = {"timeout": "2.5", "tries": "3", "name": "12", "either": "4", "other": "1.5"}
    assert coerce_numbers(config, SCHEMA) == {
        "timeout": 2.5, "tries": 3, "name": "12", "either": "4", "other": "1.5"}
    assert type(coerce_numbers({"timeout": "2"}, SCHEMA)["timeout"]) is int
    assert coerce_numbers({"timeout": 0.25, "tries": 4}, SCHEMA) == {"timeout": 0.25, "tries": 4}


def test_text_that_is_no_number_is_left_for_validation_to_name() -> None:
    for bad in ("abc", "", "nan", "inf", "1.5x"):
        assert coerce_numbers({"timeout": bad}, SCHEMA) == {"timeout": bad}
    assert coerce_numbers({"tries": "2.5"}, SCHEMA) == {"tries": "2.5"}  # not an integer
