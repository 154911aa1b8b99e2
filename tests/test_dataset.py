"""The training-data file: three forms read alike, bad lines named by number, torn tails repaired."""

from __future__ import annotations

import json

import pytest

from ftstudio.dataset import append_records, read_dataset, repair_torn_tail
from ftstudio.errors import NotFound


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def test_three_forms_read_into_the_same_conversation(tmp_path):
    path = tmp_path / "d.jsonl"
    write_lines(
        path,
        [
            json.dumps({"instruction": "What is 25 × 4?", "output": "100"}),
            json.dumps(
                {"conversations": [{"from": "human", "value": "What is 25 × 4?"}, {"from": "gpt", "value": "100"}]}
            ),
            json.dumps(
                {"messages": [{"role": "user", "content": "What is 25 × 4?"}, {"role": "assistant", "content": "100"}]}
            ),
        ],
    )
    data = read_dataset(path)
    assert not data.errors
    assert [e.form for e in data.examples] == ["alpaca", "sharegpt", "openai"]
    assert len({e.messages for e in data.examples}) == 1
    assert data.examples[0].to_canonical() == {"instruction": "What is 25 × 4?", "output": "100"}


def test_alpaca_input_and_system_prompts(tmp_path):
    path = tmp_path / "d.jsonl"
    write_lines(
        path,
        [
            json.dumps({"instruction": "Translate", "input": "chat", "output": "cat"}),
            json.dumps(
                {
                    "messages": [
                        {"role": "system", "content": "Be brief."},
                        {"role": "user", "content": "Hi"},
                        {"role": "assistant", "content": "Hello"},
                    ]
                }
            ),
        ],
    )
    first, second = read_dataset(path).examples
    assert first.prompt == "Translate\n\nchat"
    assert second.messages[0].role == "system" and second.answer == "Hello"
    assert "messages" in second.to_canonical()


def test_bad_lines_are_reported_by_number_and_the_rest_kept(tmp_path):
    path = tmp_path / "d.jsonl"
    write_lines(
        path,
        [
            json.dumps({"instruction": "ok", "output": "fine"}),
            "{not json",
            json.dumps({"instruction": "no answer"}),
            "",
            json.dumps({"messages": [{"role": "user", "content": "only a question"}]}),
            json.dumps({"instruction": "   ", "output": "x"}),
            json.dumps([1, 2]),
            json.dumps({"instruction": "ok 2", "output": "fine 2"}),
        ],
    )
    data = read_dataset(path)
    assert [e.line for e in data.examples] == [1, 8]
    errors = {e.line: e.message for e in data.errors}
    assert set(errors) == {2, 3, 5, 6, 7}
    assert "not valid JSON" in errors[2]
    assert "'output' is missing" in errors[3]
    assert "end with an assistant" in errors[5]
    assert "empty" in errors[6]


def test_missing_file_says_how_to_get_data(tmp_path):
    with pytest.raises(NotFound, match="ftstudio generate"):
        read_dataset(tmp_path / "none.jsonl")


def test_torn_last_line_is_cut_and_appending_continues(tmp_path):
    path = tmp_path / "d.jsonl"
    append_records(path, [{"instruction": "a", "output": "b"}])
    with path.open("ab") as f:
        f.write(b'{"instruction": "half')
    assert repair_torn_tail(path) == len(b'{"instruction": "half')
    append_records(path, [{"instruction": "c", "output": "d"}])
    data = read_dataset(path)
    assert [e.prompt for e in data.examples] == ["a", "c"] and not data.errors


def test_whole_last_line_without_newline_is_kept(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"instruction": "a", "output": "b"}), encoding="utf-8")
    assert repair_torn_tail(path) == 0
    append_records(path, [{"instruction": "c", "output": "d"}])
    assert [e.prompt for e in read_dataset(path).examples] == ["a", "c"]


def test_rewrite_lines_edits_and_deletes_by_number_and_keeps_bad_lines(tmp_path):
    from ftstudio.dataset import rewrite_lines

    path = tmp_path / "d.jsonl"
    path.write_text('{"instruction": "a", "output": "A"}\nnot json\n{"instruction": "b", "output": "B"}\n')
    assert rewrite_lines(path, {1: {"instruction": "a2", "output": "A2"}, 3: None}) == 2
    assert path.read_text() == '{"instruction": "a2", "output": "A2"}\nnot json\n'
    with pytest.raises(NotFound, match="no line 7"):
        rewrite_lines(path, {7: None})
