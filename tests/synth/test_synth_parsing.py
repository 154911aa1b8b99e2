"""Replies as helper models really write them: reasoning blocks, fences, prose, small JSON faults, truncation."""

from __future__ import annotations

import json

import pytest

from ftstudio.synth.parsing import Pair, extract_json, parse_pairs

PAIRS = {"pairs": [{"question": "What is a fraction?", "answer": "A part of a whole."}]}


@pytest.mark.parametrize(
    "reply",
    [
        json.dumps(PAIRS),
        "<think>\nI should write one pair {maybe}.\n</think>\n" + json.dumps(PAIRS),
        "The model thought here without an opening tag.</think>" + json.dumps(PAIRS),
        "```json\n" + json.dumps(PAIRS, indent=2) + "\n```",
        "Sure! Here you go:\n" + json.dumps(PAIRS) + "\nHope this helps.",
        '{"pairs": [{"question": "What is a fraction?", "answer": "A part of a whole.",},],}',
        json.dumps(PAIRS["pairs"]),
        '{"question": "What is a fraction?", "answer": "A part of a whole."}',
        '{"items": [{"Instruction": "What is a fraction?", "Output": "A part of a whole."}]}',
    ],
)
def test_wrapped_and_faulty_replies_parse(reply):
    assert parse_pairs(reply) == [Pair("What is a fraction?", "A part of a whole.")]


def test_truncated_reply_keeps_complete_pairs():
    full = json.dumps({"pairs": [{"question": f"Question {i}?", "answer": f"Answer {i}."} for i in range(3)]})
    cut = full[: full.index("Answer 2") + 3]  # stops inside the last answer's string
    assert [p.question for p in parse_pairs(cut)] == ["Question 0?", "Question 1?"]


def test_braces_inside_strings_do_not_confuse_the_scanner():
    reply = 'prefix {"pairs": [{"question": "Is {x} a set?", "answer": "Yes, {x} is a set with \\"x\\"."}]} suffix'
    assert parse_pairs(reply)[0].answer == 'Yes, {x} is a set with "x".'


@pytest.mark.parametrize("reply", ["", "   ", "<think>only thinking</think>", "I cannot help with that.", '{"a": 1}'])
def test_unusable_replies_raise(reply):
    with pytest.raises(ValueError):
        parse_pairs(reply)


def test_extract_json_repairs_smart_quotes_and_trailing_commas():
    assert extract_json("{“supported”: true,}") == {"supported": True}
