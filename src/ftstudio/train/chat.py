"""Try a trained model: the base model with a run's adapter, the chat template, and tokens streamed as they come."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ftstudio.errors import BadInput, NotFound, Unavailable
from ftstudio.project import Project
from ftstudio.train.formatting import Formatter
from ftstudio.train.runs import Run, latest_run, load_run


@dataclass
class ChatModel:
    """A loaded base model + adapter; `stream` answers one conversation."""

    run: Run
    model: Any
    formatter: Formatter
    max_new_tokens: int

    def stream(self, prompt: str | list[dict[str, str]], *, max_new_tokens: int | None = None) -> Iterator[str]:
        """Yield the answer's text piece by piece. `prompt` is a user message or a whole conversation."""
        import torch
        from transformers import TextIteratorStreamer

        from ftstudio.dataset import Example, Message

        turns = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
        # Reuse the training formatter so the system prompt is applied exactly as in training.
        turns.append({"role": "assistant", "content": "-"})
        example = Example(tuple(Message(m["role"], m["content"]) for m in turns), "openai")
        messages = self.formatter.messages(example)[:-1]
        tok = self.formatter.tokenizer
        ids = torch.tensor([self.formatter.prompt_ids(messages)], device=next(self.model.parameters()).device)
        streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True)
        kwargs = dict(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens or self.max_new_tokens,
            do_sample=False,
            eos_token_id=sorted(self.formatter.end_ids),
            pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
            streamer=streamer,
        )
        failure: list[BaseException] = []

        def work() -> None:
            try:
                with torch.no_grad():
                    self.model.generate(**kwargs)
            except BaseException as exc:  # surfaced in the caller's thread below
                failure.append(exc)
                streamer.end()

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        yield from streamer
        thread.join()
        if failure:
            raise failure[0]


def pick_run(project: Project, run_id: str | None) -> Run:
    """The named run, or the newest completed one; NotFound when there is none or it has no adapter."""
    run = load_run(project, run_id) if run_id else latest_run(project, completed=True)
    if run is None:
        raise NotFound(
            f"project {project.name!r} has no completed training run", hint=f"train one: ftstudio train {project.name}"
        )
    if not (run.adapter_dir / "adapter_config.json").is_file():
        raise BadInput(
            f"run {run.id} has no final adapter (status {run.status})",
            hint=f"resume it with `ftstudio train {project.name} --resume {run.id}`, or pick a completed run",
        )
    if not (run.adapter_dir / "adapter_model.safetensors").is_file():
        pickles = sorted(p.name for p in run.adapter_dir.iterdir() if p.suffix in {".bin", ".pt", ".pth", ".pkl"})
        found = f" (only {', '.join(pickles)}: pickle files, which ftstudio never loads)" if pickles else ""
        raise BadInput(
            f"run {run.id}: {run.adapter_dir} has no adapter_model.safetensors{found}",
            hint="save the adapter as safetensors (PEFT: save_pretrained(..., safe_serialization=True)), or retrain",
        )
    return run


def load_chat(project: Project, run_id: str | None = None) -> ChatModel:
    """Load the run's base model and adapter for chatting."""
    run = pick_run(project, run_id)  # before the heavy imports, so a missing run is reported at once
    from peft import PeftModel

    from ftstudio.basemodels.gguf_import import loadable
    from ftstudio.train.backends import cuda_available
    from ftstudio.train.backends.hf import is_prequantized_4bit, load_base, load_tokenizer
    from ftstudio.train.formatting import end_of_turn_ids

    settings = run.record.train_settings()
    base = loadable(run.base_model)  # a GGUF spec: its imported folder
    trust = project.settings().base_model.trust_remote_code
    tokenizer = load_tokenizer(base, trust_remote_code=trust)
    four_bit = settings.method == "qlora" or is_prequantized_4bit(base)
    if four_bit and not cuda_available():
        raise Unavailable(
            f"run {run.id} has a 4-bit (QLoRA) base model, which needs a CUDA GPU to load",
            hint="chat with it on a machine with an NVIDIA GPU, or export a merged model first",
        )
    model = load_base(base, four_bit=four_bit, trust_remote_code=trust, for_training=False)
    model = PeftModel.from_pretrained(model, str(run.adapter_dir))
    model.eval()
    formatter = Formatter.create(tokenizer, settings.system_prompt, end_of_turn_ids(base, tokenizer))
    return ChatModel(run, model, formatter, settings.max_new_tokens)


def with_passages(project: Project, question: str, k: int) -> tuple[str, list[str]]:
    """The question with the k best matching chunks of the knowledge store before it, and where each came from
    (the question alone when k is 0 or nothing matches)."""
    if k <= 0 or not project.knowledge_db.exists():
        return question, []
    from ftstudio.knowledge.store import KnowledgeStore

    with KnowledgeStore.open(project.knowledge_db) as store:
        hits = store.search(question, k=k)
    if not hits:
        return question, []
    context = "\n\n".join(h.chunk.text for h in hits)
    sources = [f"{h.chunk.document} ({h.chunk.location or 'chunk ' + str(h.chunk.ordinal)})" for h in hits]
    return f"Use these passages to answer.\n\n{context}\n\nQuestion: {question}", sources
