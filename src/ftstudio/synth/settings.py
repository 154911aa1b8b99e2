"""Settings for the generation stage (the `[synth]` table of project.toml). Never holds an API key."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ProviderName = Literal["ollama", "openrouter", "openai", "llamacpp", "offline"]
QuestionType = Literal["fact", "explanation", "procedure", "comparison", "numeric"]
QUESTION_TYPES: dict[str, str] = {
    "fact": "facts (who, what, when, where)",
    "explanation": "explanations (why, how it works)",
    "procedure": "procedures (how to do it, step by step)",
    "comparison": "comparisons (how two things differ or agree)",
    "numeric": "numeric questions, with the working shown in the answer",
}


class SynthSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    provider: ProviderName = Field(
        "ollama",
        description="Where the helper model runs (llamacpp: a GGUF file run in this process, no server; offline: a "
        "rule-based stand-in needing no model).",
    )
    model: str | None = Field(
        None,
        title="Helper model",
        description="Helper model name as the provider lists it (e.g. llama3:8b; llamacpp: a .gguf path or a listed "
        "name).",
    )
    base_url: str | None = Field(None, description="Provider address; the provider's default when empty.")
    pairs_per_chunk: int = Field(5, ge=1, le=50, description="Question-answer pairs asked for in each request.")
    concurrency: int | None = Field(
        None,
        ge=1,
        le=512,
        description="Requests in flight; empty: the provider's default (Ollama 4, cloud 16; llamacpp runs one at a "
        "time).",
    )
    temperature: float = Field(0.7, ge=0, le=2, description="Sampling temperature of the helper model.")
    seed: int | None = Field(
        None,
        description="Seed of the order chunks are drawn in (ties among the least used) and of the helper's sampling "
        "(when it supports one): the same seed, documents and helper write the same pairs; empty: a new order.",
    )
    num_ctx: int | None = Field(
        None,
        ge=256,
        description="Context window of a local helper (Ollama's num_ctx, llamacpp's n_ctx); empty: the model's "
        "(llamacpp: at most 4096).",
    )
    max_tokens: int = Field(2048, ge=64, description="Most tokens the helper may write per request.")
    timeout_s: float = Field(300, gt=0, description="Seconds one request may take before it is retried.")
    max_attempts: int = Field(5, ge=1, le=20, description="Tries per request (rate limits, 5xx, timeouts).")
    audience: str = Field(
        "a curious adult learner", description="Who the questions are for; sets level and style of the pairs."
    )
    style: str = Field(
        "clear, self-contained questions; complete answers in full sentences",
        description="Answer style: how the questions and answers should read.",
    )
    question_types: list[QuestionType] = Field(
        ["fact", "explanation", "procedure", "comparison", "numeric"],
        min_length=1,
        description="Kinds of question asked for, spread evenly over each request's pairs.",
    )
    paraphrases: int = Field(
        0, ge=0, le=10, description="Extra phrasings of each question, each written as its own training pair."
    )
    followups: bool = Field(False, description="Also write each pair with one follow-up question (a multi-turn pair).")
    passages_share: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of pairs also written 'with passages': the question with retrieved passages "
        "(its source among distractors) and the answer that uses the right one.",
    )
    distractors: int = Field(2, ge=0, le=10, description="Distractor passages beside the source in those pairs.")
    min_question_chars: int = Field(10, ge=1, description="Drop questions shorter than this.")
    min_answer_chars: int = Field(20, ge=1, description="Drop answers shorter than this.")
    max_answer_chars: int = Field(4000, ge=1, description="Drop answers longer than this.")
    grounding_threshold: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Share of the answer's content words that must appear in the source chunk (0 turns it off).",
    )
    duplicate_threshold: float = Field(
        0.8, gt=0, le=1, description="Drop a question this similar (shingle Jaccard) to one already in the file."
    )
    judge: bool = Field(False, description="Ask the helper a second time whether each answer is supported.")
