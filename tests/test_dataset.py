"""The training-data file: three forms read alike, bad lines named by number, torn tails repaired."""

from __future__ import annotations

import json

import pytest

from ftstudio.dataset import append_records, read_dataset, repair_torn_tail, rewrite_lines
from ftstudio.errors import BadInput, NotFound


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


def test_hostile_lines_are_bad_lines_with_their_numbers(tmp_path):
    """Issue 12: deep nesting was a RecursionError traceback; a lone CR split a line and shifted every later number."""
    path = tmp_path / "d.jsonl"
    good = json.dumps({"instruction": "q", "output": "a"}).encode()
    deep = b"[" * 100_000 + b"]" * 100_000
    cr_inside = json.dumps({"instruction": "x", "output": "y"}).encode().replace(b'"y"', b'"y"\r ')
    path.write_bytes(good + b"\r\n" + deep + b"\n" + cr_inside + b"\n" + b'{"a": "\r"}\n' + good + b"\n")
    data = read_dataset(path)
    assert [e.line for e in data.examples] == [1, 3, 5]  # \r\n ends line 1; the CRs stay inside lines 3 and 4
    errors = {e.line: e.message for e in data.errors}
    assert set(errors) == {2, 4} and "nested deeper than 32 levels" in errors[2]
    assert "Invalid control character" in errors[4]
    brackets_in_strings = json.dumps({"instruction": "[[[[" * 40, "output": "{{" * 40}).encode()
    path.write_bytes(brackets_in_strings + b"\n")
    assert len(read_dataset(path).examples) == 1


def test_non_utf8_names_the_first_bad_line_and_byte(tmp_path):
    path = tmp_path / "d.jsonl"
    good = json.dumps({"instruction": "q", "output": "a"}).encode()
    path.write_bytes(good + b"\n" + good + b"\n" + '{"instruction": "café", "output": "x"}'.encode("latin-1") + b"\n")
    with pytest.raises(BadInput) as info:
        read_dataset(path)
    assert "line 3 is not UTF-8" in info.value.message and "byte 21 of the line is 0xe9" in info.value.message


def test_rewrite_counts_lines_as_the_reader_does(tmp_path):
    path = tmp_path / "d.jsonl"
    one = json.dumps({"instruction": "one\r", "output": "a"}).encode().replace(b"\\r", b"\r")
    two = json.dumps({"instruction": "two", "output": "b"}).encode()
    path.write_bytes(one + b"\n" + two + b"\n")
    rewrite_lines(path, {2: None})
    assert path.read_bytes() == one + b"\n"


def test_cli_import_and_data_refuse_bad_files_without_traceback(cli, workspace):
    assert cli("init", "p").code == 0
    data = workspace / "projects" / "p" / "data" / "sft_data.jsonl"
    good = json.dumps({"instruction": "q", "output": "a"})
    latin = workspace / "latin.jsonl"
    latin.write_bytes((good + "\n" + '{"instruction": "café", "output": "x"}\n').encode("latin-1"))
    imported = cli("data", "p", "--import", latin, "--json")
    assert imported.code == 2 and "Traceback" not in imported.stderr, imported.stderr
    assert "line 2 is not UTF-8" in imported.json()["error"]
    assert not data.exists()  # nothing imported

    deep = workspace / "deep.json"
    deep.write_text("[" + "[" * 50_000 + "]" * 50_000 + "]")
    refused = cli("data", "p", "--import", deep, "--json")
    assert refused.code == 2 and "nested deeper" in refused.json()["error"], refused.stderr

    data.write_bytes(latin.read_bytes())
    checked = cli("data", "p")
    assert checked.code == 2 and "line 2 is not UTF-8" in checked.stderr and "Traceback" not in checked.stderr


def test_cli_export_lists_every_line_left_out_and_exits_1(cli, workspace):
    assert cli("init", "p").code == 0
    data = workspace / "projects" / "p" / "data" / "sft_data.jsonl"
    multi = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                          {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]}  # fmt: skip
    write_lines(data, [json.dumps({"instruction": "q", "output": "a"}), "{bad", json.dumps(multi)])
    out = workspace / "alpaca.jsonl"
    result = cli("data", "p", "--export", out, "--to", "alpaca", "--json")
    assert result.code == 1, result.stderr
    assert [s["line"] for s in result.json()["skipped"]] == [2, 3]
    assert "line 2: left out: not valid JSON" in result.stderr and "line 3: left out: a multi-turn" in result.stderr
    assert len(out.read_text().splitlines()) == 1
    assert cli("data", "p", "--export", out, "--to", "openai").code == 1  # line 2 still bad
