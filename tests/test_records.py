"""Recorded results the book reads: a damaged or incomplete file gets a ValueError naming it."""

import json
from pathlib import Path

import pytest

from transformer_course.records import DATA, read_record

ROOT = Path(__file__).resolve().parents[1]
RECORDS = {  # every record a chapter reads, and the entries it needs
    DATA / "seq2seq_variants.json": {
        "recorded.machine": str, "recorded.torch": str, "recipe.steps": int, "runs": list},
    ROOT / "benchmarks" / "results" / "dev-machine.json": {
        "machine": str, "torch": str, "threads": int, "tables": (dict, list)},
}
GOOD = {"recorded": {"machine": "a CPU", "torch": "2.13.0"}, "runs": [{"seed": 0}]}
NEEDS = {"recorded.machine": str, "runs": list}


@pytest.mark.parametrize("path", list(RECORDS), ids=lambda path: path.name)
def test_the_committed_records_hold_what_the_book_reads_and_name_their_machine(path):
    record = read_record(path, RECORDS[path])
    machine = record["recorded"]["machine"] if "recorded" in record else record["machine"]
    assert "Intel" in machine or "AMD" in machine or "cores" in machine, machine


def test_a_good_record_is_returned_whole(tmp_path):
    path = tmp_path / "runs.json"
    path.write_text(json.dumps(GOOD))
    assert read_record(path, NEEDS) == GOOD


@pytest.mark.parametrize("text, match", [
    (json.dumps(GOOD)[:25], "not valid JSON, truncated or corrupt"),
    ("", "not valid JSON"),
    ("\x00\x01 garbage", "not valid JSON"),
    ("[1, 2]", "holds a JSON list, expected an object"),
    (json.dumps({"runs": []}), "no entry 'recorded.machine'"),
    (json.dumps({"recorded": "a CPU", "runs": []}), "no entry 'recorded.machine'"),
    (json.dumps({"recorded": {"machine": 3}, "runs": []}), "recorded.machine. is of type int, expected str"),
    (json.dumps({"recorded": {"machine": "a CPU"}, "runs": {}}), "runs. is of type dict, expected list"),
])
def test_a_damaged_or_incomplete_record_is_refused_by_name(tmp_path, text, match):
    path = tmp_path / "runs.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=match) as error:
        read_record(path, NEEDS)
    assert str(path) in str(error.value)


def test_a_record_that_is_not_text_is_refused(tmp_path):
    path = tmp_path / "runs.json"
    path.write_bytes(bytes(range(256)))
    with pytest.raises(ValueError, match="truncated or corrupt"):
        read_record(path, NEEDS)


def test_a_missing_record_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no file at .*absent.json"):
        read_record(tmp_path / "absent.json", NEEDS)
