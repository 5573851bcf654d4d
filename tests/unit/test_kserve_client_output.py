"""How the KServe client scripts' answers are read back (scripts/client/kserve_venv.py): one JSON object
on stdout, compact or indented, after whatever the client logged."""

import json

from scripts.client.kserve_venv import last_json_object

ANSWER = {"ok": True, "calls": {"ServerLive": {"ok": True}}, "top": [[713, 0.73]]}


def test_an_indented_object_is_read_whole():
    # kserve_grpc_check.py prints with indent=2: the first reader only looked at lines starting with "{".
    assert last_json_object(json.dumps(ANSWER, indent=2) + "\n") == ANSWER


def test_a_compact_object_after_log_lines_is_read():
    stdout = "Failed to infer: INVALID_ARGUMENT\n{not json\n" + json.dumps(ANSWER) + "\n"
    assert last_json_object(stdout) == ANSWER


def test_the_last_of_two_objects_wins():
    assert last_json_object(json.dumps({"ok": False}) + "\n" + json.dumps(ANSWER, indent=1)) == ANSWER


def test_no_object_is_none():
    assert last_json_object("") is None
    assert last_json_object("Traceback (most recent call last):\n  {broken\n") is None
    assert last_json_object("[1, 2]\n") is None
