"""The training mix: what a request asks for beyond plain pairs, and the extra lines each accepted pair becomes.

Facts stick when a model sees them in many phrasings and as questions (docs/generate.md cites the evidence), and a
model reads passages better when it has trained on answering from them among distractors. So, per settings:
- `question_types`: the kinds of question each request spreads its pairs over;
- `paraphrases` K: K more phrasings of each question, each its own line (`meta.kind = "paraphrase"`);
- `followups`: the pair continued by one follow-up turn, as a two-turn conversation (`meta.kind = "followup"`);
- `passages_share`: that share of pairs again with retrieved passages, its source among `distractors` others,
  in the user turn (`meta.kind = "passages"`); training masks all but the answer, as for every line.
A plain pair has no `meta.kind`; only plain pairs count toward `--pairs N`.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from typing import Any

from ftstudio.synth.parsing import Pair
from ftstudio.synth.settings import QUESTION_TYPES, SynthSettings

VARIANT_KINDS = ("paraphrase", "followup", "passages")


def is_plain(meta: dict[str, Any]) -> bool:
    """Whether a line is a plain generated pair (not one of its variants)."""
    return meta.get("kind") not in VARIANT_KINDS


def prompt_parts(settings: SynthSettings) -> dict[str, str]:
    """The `$types`, `$extras` and `$form` placeholders of the generation templates for these settings."""
    types = "; ".join(QUESTION_TYPES[t] for t in settings.question_types)
    extras, example = [], {"question": "...", "answer": "..."}
    if settings.paraphrases:
        extras.append(
            f"- For each pair also give {settings.paraphrases} other phrasings of the question (same meaning, "
            'new words) in "paraphrases".'
        )
        example["paraphrases"] = ["..."] * settings.paraphrases
    if settings.followups:
        extras.append(
            "- For each pair also give one follow-up question a learner would ask next, with its answer from the "
            'source, in "followup".'
        )
        example["followup"] = {"question": "...", "answer": "..."}
    form = json.dumps({"pairs": [example]}, ensure_ascii=False)
    return {"types": types, "extras": "".join(e + "\n" for e in extras), "form": form}


def passages_prompt(question: str, passages: Sequence[str]) -> str:
    """The user turn of a "with passages" question: numbered passages, then the question.

    Training's "with passages" lines and the report card's "+passages" answers both use this, so the tuned model is
    asked in the form it learned.
    """
    blocks = "\n\n".join(f"[{i}] {' '.join(text.split())}" for i, text in enumerate(passages, 1))
    return f"Answer the question using the passages below.\n\nPassages:\n{blocks}\n\nQuestion: {question}"


def chosen_for_passages(question: str, share: float) -> bool:
    """A stable draw (from the question's text) so a resumed run picks the same pairs."""
    if share <= 0:
        return False
    digest = hashlib.sha256(question.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < share


def variants(
    pair: Pair, meta: dict[str, Any], settings: SynthSettings, passages: Sequence[tuple[int, str]] | None
) -> list[dict[str, Any]]:
    """The extra lines of one accepted pair. `passages`: (chunk id, text) with the source first, or None."""
    records: list[dict[str, Any]] = []
    for phrasing in pair.paraphrases[: settings.paraphrases]:
        records.append(
            {"instruction": phrasing, "output": pair.answer,
             "meta": {**meta, "kind": "paraphrase", "paraphrase_of": pair.question}}
        )  # fmt: skip
    if settings.followups and pair.followup is not None:
        turns = [
            ("user", pair.question), ("assistant", pair.answer),
            ("user", pair.followup.question), ("assistant", pair.followup.answer),
        ]  # fmt: skip
        records.append(
            {"messages": [{"role": r, "content": c} for r, c in turns], "meta": {**meta, "kind": "followup"}}
        )
    if passages and chosen_for_passages(pair.question, settings.passages_share):
        order = list(passages)
        random.Random(pair.question).shuffle(order)
        records.append(
            {
                "instruction": passages_prompt(pair.question, [text for _, text in order]),
                "output": pair.answer,
                "meta": {
                    **meta,
                    "kind": "passages",
                    "passage_ids": [cid for cid, _ in order],
                    "source_passage": 1 + [cid for cid, _ in order].index(passages[0][0]),
                },
            }  # fmt: skip
        )
    return records
