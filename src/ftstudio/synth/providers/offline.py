"""The offline helper: a rule-based stand-in for a helper model, so the whole flow runs with no model and no network.

It is no language model and writes plain data: it reads the source passage the default templates put between
triple quotes, makes one question per sentence ("What does the material say about <its longest words>?", the
sentence as the answer), rephrases a question from its key words, and grades an answer by the share of the
reference's key words (those also in the passage) that it contains: 70% or more correct, 30% partly, else wrong.
Good enough to try ftstudio (the example project uses it); for real data pick a real helper model.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ftstudio.synth.providers.base import Completion, Message, ModelInfo, Provider, ProviderError
from ftstudio.synth.providers.registry import register
from ftstudio.synth.quality import content_terms, grounding_score, words

MODEL = "rules"
_PASSAGE = re.compile(r'"""\s*\n(.*?)\n\s*"""', re.S)
_K = re.compile(r"Write (\d+) question")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_GRADE = re.compile(r"Question: (.*?)\nReference answer: (.*?)\nCandidate answer: (.*?)\n\s*Verdict:", re.S)
_JUDGE = re.compile(r"Question: (.*?)\nAnswer: (.*?)\n\s*Reply", re.S)
_REPHRASE = re.compile(r"Question: (.*?)\n\s*Reply", re.S)
_GENERIC = {"material", "state", "states", "about", "which", "there", "their", "fact", "facts", "does", "what", "says"}


def _key_words(text: str, n: int = 3) -> list[str]:
    found = [w for w in dict.fromkeys(words(text)) if len(w) > 4 and w not in _GENERIC]
    return sorted(found, key=lambda w: (-len(w), w))[:n]


def _pairs(content: str, schema: dict[str, Any]) -> dict[str, Any]:
    k = int(m.group(1)) if (m := _K.search(content)) else 3
    source = _PASSAGE.search(content)
    sentences = [s for s in _SENTENCE.split(" ".join(source.group(1).split())) if len(s.split()) >= 4] if source else []
    item = schema["properties"]["pairs"]["items"]["properties"]
    exam = "reference answer" in content  # the eval set's prompt: word its questions unlike training's
    pairs = []
    for i, sentence in enumerate(sentences[:k]):
        subject = ", ".join(_key_words(sentence)) or sentence.split()[0]
        question = f"Which fact does the material give about {subject}?" if exam else (
            f"What does the material say about {subject}?")  # fmt: skip
        pair: dict[str, Any] = {"question": question, "answer": sentence}
        if "paraphrases" in item:
            pair["paraphrases"] = [f"Tell me what is known of {subject}.", f"Regarding {subject}: what is true?"]
        if "followup" in item:
            nxt = sentences[(i + 1) % len(sentences)]
            pair["followup"] = {"question": f"And what else goes with {subject}?", "answer": nxt}
        pairs.append(pair)
    return {"pairs": pairs}


def _grade(content: str) -> dict[str, Any]:
    found = _GRADE.search(content)
    if not found:
        return {"verdict": "wrong", "reason": "no question, reference and candidate found in the prompt"}
    _, reference, candidate = (g.strip() for g in found.groups())
    passage = _PASSAGE.search(content)
    in_passage = set(content_terms(passage.group(1))) if passage else set()
    keys = [t for t in dict.fromkeys(content_terms(reference)) if t in in_passage] or list(
        dict.fromkeys(content_terms(reference))
    )
    if not keys:
        return {"verdict": "wrong", "reason": "the reference has no key words to look for"}
    have = set(content_terms(candidate))
    hits = [t for t in keys if t in have]
    share = len(hits) / len(keys)
    verdict = "correct" if share >= 0.7 else "partly" if share >= 0.3 else "wrong"
    return {"verdict": verdict, "reason": f"{len(hits)} of {len(keys)} key words of the reference"}


@register
class OfflineProvider(Provider):
    name = "offline"
    default_base_url = None
    default_concurrency = 8

    async def list_models(self) -> list[ModelInfo]:
        return [ModelInfo(MODEL, prompt_price=0.0, completion_price=0.0, details="rule-based, no model (offline)")]

    async def check(self, model: str) -> ModelInfo | None:
        if model != MODEL:
            raise ProviderError(
                "model_missing", f"the offline helper has no model {model!r}", hint=f"use --model {MODEL}"
            )
        return (await self.list_models())[0]

    async def chat(self, model: str, messages: list[Message], *, schema: dict[str, Any] | None = None,
                   **_: Any) -> Completion:  # fmt: skip
        await self.check(model)
        content = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        props = (schema or {}).get("properties", {})
        if "pairs" in props:
            data: Any = _pairs(content, schema or {})
        elif "verdict" in props:
            data = _grade(content)
        elif "paraphrase" in props:
            found = _REPHRASE.search(content)
            subject = " and ".join(_key_words(found.group(1) if found else content))
            data = {"paraphrase": f"Tell me what is known of {subject}." if subject else ""}
        elif "supported" in props:
            found, passage = _JUDGE.search(content), _PASSAGE.search(content)
            terms = set(content_terms(passage.group(1))) if passage else set()
            data = {"supported": bool(found and terms and grounding_score(found.group(2), terms) >= 0.5)}
        else:
            raise ProviderError("bad_request", "the offline helper only writes structured data (pairs, verdicts)")
        text = json.dumps(data, ensure_ascii=False)
        return Completion(text, len(content.split()), len(text.split()), 0.0, structured=True)
