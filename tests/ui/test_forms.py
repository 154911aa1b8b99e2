"""The studio's forms over the core's requests: what a form asks for is the request the CLI would build, empty boxes
are the defaults they name, and messages name the page's fields, not command-line options."""

from __future__ import annotations

import pytest

from ftstudio.errors import BadInput
from ftstudio.project import Project
from ftstudio.requests import GenerateRequest, TrainRequest
from ftstudio.ui.common import as_fields, empty_text, form_request


def test_a_form_asks_for_what_differs_from_the_project_and_saves_it(workspace):
    project = Project.create("demo", workspace)
    request = form_request(TrainRequest, project, {"max_steps": "4", "rank": 16.0, "epochs": 3.0}, resume="")
    assert request.overrides == {"max_steps": 4} and request.save and request.resume is None
    assert request.options() == ["--max-steps=4", "--save"]
    same = form_request(TrainRequest, project, {"max_steps": "", "rank": 16})
    assert same.overrides == {} and not same.save and same.options() == []


def test_empty_boxes_are_defaults_and_bad_values_name_the_field(workspace):
    project = Project.create("demo", workspace)
    request = form_request(GenerateRequest, project, {"model": "llama3:8b"}, pairs="", max_cost="", topic="")
    assert request.pairs is None and request.max_cost is None and request.topic is None
    with pytest.raises(BadInput, match="pairs: Input should be greater than or equal to 1"):
        form_request(GenerateRequest, project, {}, pairs="0")
    with pytest.raises(BadInput, match="pairs: Input should be a valid integer"):
        form_request(GenerateRequest, project, {}, pairs="many")
    assert empty_text(GenerateRequest.model_fields["pairs"]) == "empty: 100"
    assert empty_text(GenerateRequest.model_fields["max_cost"]) == "empty: no limit"


def test_messages_name_the_fields_of_the_page():
    shown = as_fields("no helper model: pass --model NAME, or lower `--max-steps`; --per-chunk 2; --force stays")
    assert shown == "no helper model: pass *Helper model*, or lower *Max steps*; *Pairs per chunk* 2; --force stays"


def test_chat_text_is_shown_as_written_and_read_back_the_same():
    from ftstudio.ui.tabs.chat import _plain, shown

    text = "~~x~~ <b>y</b>\n$$z$$ &amp; \"q\""
    assert shown(text) == "~~x~~ &lt;b&gt;y&lt;/b&gt;<br>$$z$$ &amp;amp; &quot;q&quot;"
    assert _plain([{"role": "assistant", "content": [{"type": "text", "text": shown(text)}]}]) == [
        {"role": "assistant", "content": text}
    ]


def test_the_loss_plot_axes_reach_beyond_every_point():
    import pandas as pd

    from ftstudio.ui.tabs.train import plot_limits

    frame = pd.DataFrame({"step": [1, 2, 3, 4, 4], "loss": [7.3, 7.1, 7.1, 7.15, 7.36],
                          "series": ["train"] * 4 + ["eval"]})  # fmt: skip
    limits = plot_limits(frame)
    assert limits["x_lim"] == [0, 5]
    low, high = limits["y_lim"]
    assert low < 7.1 and high > 7.36  # the last step's eval point is not on the clipping edge
    flat = plot_limits(frame.assign(loss=2.0))
    assert flat["y_lim"][0] < 2.0 < flat["y_lim"][1]


def test_a_run_the_documents_cannot_fill_reads_partly_done_in_the_tabs_own_words():
    from ftstudio.synth.state import STOP_REASONS
    from ftstudio.ui.tabs.generate import result_summary

    why, hint = STOP_REASONS["exhausted"]
    result = {"status": "stopped", "stop_reason": "exhausted", "written": 57, "target": 100, "partial": True,
              "stopped_because": why, "to_get_more": hint, "dropped": {"duplicate": 40}, "requests": 60,
              "retries": 0, "failures": 0, "tokens": {"in": 1, "out": 2}, "cost_usd": 0}  # fmt: skip
    shown = result_summary(result)
    assert shown.startswith("**Partly done**: wrote **57** of 100 pairs (kept in the data below); stopped because "
                            "the documents gave no more new pairs")  # fmt: skip
    assert "fewer *Pairs*" in shown and "*Topic*" in shown and "--" not in shown
    assert result_summary({**result, "status": "done", "written": 100}).startswith("Wrote **100** of 100 pairs ·")
