"""Local HTTP servers speaking Ollama's and OpenAI's (OpenRouter's) wire protocols, for tests of any stage.

Each server runs aiohttp in its own thread on 127.0.0.1:0 (so a subprocess of the real CLI can reach it too), keeps
a log of the requests it received, and answers like the real service: status codes and error bodies, NDJSON and SSE
streaming, `Retry-After`. Answers are *grounded*: the server reads the source text between triple quotes in the
prompt and turns its sentences into question-answer pairs, so generation's grounding filter passes for real (with
paraphrases and a follow-up when the prompt asks for them). In a topic-only prompt it writes arithmetic questions
with correct answers. As the report card's judge it grades by the passage (`grade_verdict`): correct when the
candidate says every key word of the reference that the passage holds.

Faults for the next requests are queued with `server.script("429", "500", ...)`; each chat request takes one:
`401`, `404`, `429` (Retry-After: 1), `500`, `slow` (waits `slow_s`), `truncated` (JSON cut mid-way), `think`
(a <think> block and a code fence around the JSON), `empty` (empty content), `prose` (prose around the JSON).
`reject_format=True` makes an OpenAI server refuse `response_format` like servers without structured output do;
`formats=("json_object",)` accepts only those `response_format` types, refusing the others with `format_status`
(llama-cpp-python's server answers `json_schema` with a 500 naming `response_format`).

    with OllamaServer(models=["llama3:8b"]) as server:
        server.url  # http://127.0.0.1:PORT
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import threading
import time
from collections import deque
from typing import Any

from aiohttp import web

_SOURCE = re.compile(r'"""\s*\n(.*?)\n\s*"""', re.S)
_K = re.compile(r"Write (\d+) question")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_PHRASINGS = re.compile(r"give (\d+) other phrasings")
_GRADE = re.compile(r"Reference answer: (.*?)\nCandidate answer: (.*?)\n\s*Verdict:", re.S)
_REWRITE = re.compile(r"Question: (.*?)\n", re.S)
_COMMON = {"about", "material", "state", "which", "there", "their", "these", "where", "while", "would", "could"}


def key_words(text: str) -> list[str]:
    """Lower-cased words of five letters or more, in order, without repeats (the server's own notion of a fact)."""
    found = [w.strip(".,;:!?()\"'").lower() for w in text.split()]
    return list(dict.fromkeys(w for w in found if len(w) > 4 and w not in _COMMON))


def grade_verdict(passage: str, reference: str, candidate: str) -> dict[str, str]:
    """The judge's verdict: which of the reference's key words that the passage contains the candidate says.

    All of them: correct; at least half: partly; fewer: wrong. Derived from the texts, so a test can predict it.
    """
    in_passage = set(key_words(passage))
    keys = [w for w in key_words(reference) if w in in_passage] or key_words(reference)
    said = set(key_words(candidate))
    hits = [w for w in keys if w in said]
    if keys and len(hits) == len(keys):
        verdict = "correct"
    elif keys and len(hits) * 2 >= len(keys):
        verdict = "partly"
    else:
        verdict = "wrong"
    return {"verdict": verdict, "reason": f"says {len(hits)} of the {len(keys)} key words of the reference"}


def count_tokens(text: str) -> int:
    return max(1, len(text.split()))


class ProtocolServer:
    """Base: an aiohttp application served from a background thread."""

    def __init__(self, *, latency_s: float = 0.0, slow_s: float = 3.0, seed: int = 0):
        self.latency_s = latency_s
        self.slow_s = slow_s
        self.faults: deque[str] = deque()
        self.always: str | None = None
        self.requests: list[dict[str, Any]] = []
        self.rng = random.Random(seed)
        self._counter = 0
        self._visits: dict[str, int] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # lifecycle --------------------------------------------------------------------------------------------------
    def app(self) -> web.Application:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ProtocolServer:
        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._runner = web.AppRunner(self.app(), access_log=None)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=1024)
            self._loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()

        self._thread = threading.Thread(target=serve, daemon=True, name=type(self).__name__)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("protocol server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # behaviour --------------------------------------------------------------------------------------------------
    def script(self, *faults: str) -> None:
        """Apply these faults to the next chat requests, one each, in order."""
        with self._lock:
            self.faults.extend(faults)

    def next_fault(self) -> str | None:
        with self._lock:
            self._counter += 1
            if self.faults:
                return self.faults.popleft()
            return self.always

    def chat_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"].endswith("/chat") or r["path"].endswith("/chat/completions")]

    def log(self, request: web.Request, body: Any) -> None:
        self.requests.append(
            {"path": request.path, "method": request.method, "headers": dict(request.headers), "body": body}
        )

    def answer_text(self, prompt: str, fault: str | None) -> str:
        """The helper's reply to a generation prompt: JSON pairs built from the prompt's source (or topic)."""
        k = int(m.group(1)) if (m := _K.search(prompt)) else 3
        source = _SOURCE.search(prompt)
        if (graded := _GRADE.search(prompt)) is not None:  # the report card's judge
            verdict = grade_verdict(source.group(1) if source else "", graded.group(1), graded.group(2))
            body = json.dumps(verdict)
        elif "Rewrite the question" in prompt:  # the eval set's paraphrase
            question = _REWRITE.search(prompt).group(1)
            body = json.dumps({"paraphrase": f"Tell me what is known of {' and '.join(key_words(question)[:3])}."})
        elif "supported" in prompt and "Question:" in prompt:  # generation's judge
            body = json.dumps({"supported": True})
        else:
            pairs = self._grounded_pairs(source.group(1), k) if source else self._topic_pairs(k)
            if "exam questions" in prompt:  # the eval set's questions: worded unlike the training pairs
                pairs = [{**p, "question": p["question"].replace("What does the material state", "Which fact is "
                                                                 "given")} for p in pairs]  # fmt: skip
            phrasings = int(m.group(1)) if (m := _PHRASINGS.search(prompt)) else 0
            for i, pair in enumerate(pairs):
                words = key_words(pair["question"])[:3]
                if phrasings:
                    pair["paraphrases"] = [f"Name a fact of {', '.join(words[j:] + words[:j])} ({j + 1})."
                                           for j in range(phrasings)]  # fmt: skip
                if "follow-up question" in prompt:
                    other = pairs[(i + 1) % len(pairs)]["answer"]
                    pair["followup"] = {"question": f"What goes along with {words[0]}?", "answer": other}
            body = json.dumps({"pairs": pairs}, ensure_ascii=False)
        if fault == "truncated":
            return body[: int(len(body) * 0.7)]
        if fault == "think":
            return f"<think>\nThe user wants {k} pairs. Let me pick facts.\n</think>\n```json\n{body}\n```"
        if fault == "prose":
            return f"Sure! Here are the pairs you asked for:\n\n{body}\n\nLet me know if you need more."
        if fault == "empty":
            return ""
        return body

    def _grounded_pairs(self, source: str, k: int) -> list[dict[str, str]]:
        sentences = [s.strip() for s in _SENTENCE.split(" ".join(source.split())) if len(s.split()) >= 4]
        # A source seen again gets its next sentences first, as a sampling model would vary its picks.
        with self._lock:
            visit = self._visits.get(source, 0)
            self._visits[source] = visit + 1
        start = visit * k
        chosen = [sentences[(start + i) % len(sentences)] for i in range(min(k, len(sentences)))] if sentences else []
        pairs = []
        for sentence in chosen:
            words = [w.strip(".,;:!?()\"'") for w in sentence.split()]
            keywords = sorted({w for w in words if len(w) > 4}, key=lambda w: (-len(w), w))[:3]
            subject = ", ".join(sorted(keywords)) or words[0]
            pairs.append({"question": f"What does the material state about {subject}?", "answer": sentence})
        return pairs

    def _topic_pairs(self, k: int) -> list[dict[str, str]]:
        pairs = []
        with self._lock:
            for _ in range(k):
                a, b = self.rng.randint(10, 99999), self.rng.randint(10, 99999)
                pairs.append(
                    {
                        "question": f"A shop sells {a} apples in the morning and {b} in the afternoon. "
                        "How many apples does it sell that day?",
                        "answer": f"It sells {a} + {b} = {a + b} apples that day.",
                    }
                )
        return pairs

    async def delay(self, fault: str | None) -> None:
        wait = self.latency_s + (self.slow_s if fault == "slow" else 0)
        if wait:
            await asyncio.sleep(wait)


class OllamaServer(ProtocolServer):
    """Ollama's native API: /api/version, /api/tags, /api/show, /api/chat (NDJSON streaming or not)."""

    def __init__(self, models: list[str] | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.models = models if models is not None else ["llama3:8b"]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self.root)
        app.router.add_get("/api/version", self.version)
        app.router.add_get("/api/tags", self.tags)
        app.router.add_post("/api/show", self.show)
        app.router.add_post("/api/chat", self.chat)
        return app

    def _has(self, name: str) -> str | None:
        for m in self.models:
            if m == name or (":" not in name and m == f"{name}:latest"):
                return m
        return None

    async def root(self, request: web.Request) -> web.Response:
        return web.Response(text="Ollama is running")

    async def version(self, request: web.Request) -> web.Response:
        return web.json_response({"version": "0.5.7"})

    async def tags(self, request: web.Request) -> web.Response:
        self.log(request, None)
        return web.json_response(
            {
                "models": [
                    {
                        "name": m,
                        "model": m,
                        "modified_at": "2026-11-01T10:00:00.000000000Z",
                        "size": 4661224676,
                        "digest": f"{abs(hash(m)):064x}"[:64],
                        "details": {
                            "parent_model": "",
                            "format": "gguf",
                            "family": "llama",
                            "families": ["llama"],
                            "parameter_size": "8.0B",
                            "quantization_level": "Q4_0",
                        },
                    }
                    for m in self.models
                ]
            }
        )

    async def show(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.log(request, body)
        name = body.get("model") or body.get("name") or ""
        if not self._has(name):
            return web.json_response({"error": f"model '{name}' not found"}, status=404)
        return web.json_response(
            {
                "modelfile": f"FROM {name}\n",
                "parameters": 'stop "<|eot_id|>"',
                "template": "{{ .Prompt }}",
                "details": {"format": "gguf", "family": "llama", "parameter_size": "8.0B"},
                "model_info": {"general.architecture": "llama", "llama.context_length": 8192},
                "capabilities": ["completion"],
            }
        )

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.log(request, body)
        name = body.get("model", "")
        if not self._has(name):
            return web.json_response({"error": f'model "{name}" not found, try pulling it first'}, status=404)
        fault = self.next_fault()
        await self.delay(fault)
        if fault == "500":
            return web.json_response({"error": "llama runner process has terminated: exit status 2"}, status=500)
        if fault == "429":
            return web.json_response({"error": "server busy, please try again.  maximum pending requests exceeded"},
                                     status=503, headers={"Retry-After": "1"})  # fmt: skip
        prompt = next((m["content"] for m in reversed(body.get("messages", [])) if m.get("role") == "user"), "")
        text = self.answer_text(prompt, fault)
        base = {"model": name, "created_at": time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())}
        final = {
            **base,
            "done": True,
            "done_reason": "stop",
            "total_duration": 123456789,
            "load_duration": 1234567,
            "prompt_eval_count": count_tokens(prompt),
            "prompt_eval_duration": 1234567,
            "eval_count": count_tokens(text),
            "eval_duration": 1234567,
        }
        if body.get("stream", True) is False:
            return web.json_response({**final, "message": {"role": "assistant", "content": text}})
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        pieces = re.findall(r".{1,16}", text, re.S) or [""]
        for piece in pieces:
            line = {**base, "message": {"role": "assistant", "content": piece}, "done": False}
            await response.write((json.dumps(line) + "\n").encode())
        await response.write((json.dumps({**final, "message": {"role": "assistant", "content": ""}}) + "\n").encode())
        await response.write_eof()
        return response


class RepeatingOllamaServer(OllamaServer):
    """A helper that writes the same pair to every prompt: a run can only ever keep one new pair from it."""

    def answer_text(self, prompt, fault):
        same = {"question": "Which river flows through the valley?", "answer": "The river flows through it."}
        return json.dumps({"pairs": [same]})


class OpenAIServer(ProtocolServer):
    """An OpenAI-compatible API under `prefix` (`/v1`, or `/api/v1` for OpenRouter): /models, /chat/completions."""

    def __init__(
        self,
        models: list[str] | None = None,
        *,
        prefix: str = "/v1",
        api_key: str | None = None,
        prices: dict[str, tuple[float, float]] | None = None,
        reject_format: bool = False,
        formats: tuple[str, ...] | None = None,
        format_status: int = 400,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.models = models if models is not None else ["test-model"]
        self.prefix = prefix
        self.api_key = api_key
        self.prices = prices or {}
        self.formats = () if reject_format else formats  # None: every response_format type is accepted
        self.format_status = format_status

    @property
    def base_url(self) -> str:
        return self.url + self.prefix

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(f"{self.prefix}/models", self.list_models)
        app.router.add_post(f"{self.prefix}/chat/completions", self.chat)
        return app

    @staticmethod
    def error(status: int, message: str, type_: str, code: str | None = None, headers=None) -> web.Response:
        body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
        return web.json_response(body, status=status, headers=headers)

    def unauthorised(self, request: web.Request) -> web.Response | None:
        if self.api_key is None:
            return None
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self.error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        return None

    async def list_models(self, request: web.Request) -> web.Response:
        self.log(request, None)
        data = []
        for m in self.models:
            item: dict[str, Any] = {"id": m, "object": "model", "created": 1730000000, "owned_by": "ftstudio-tests"}
            if m in self.prices:
                p, c = self.prices[m]
                item.update(
                    name=m.title(),
                    context_length=131072,
                    pricing={"prompt": f"{p:.10f}", "completion": f"{c:.10f}", "request": "0", "image": "0"},
                    top_provider={"context_length": 131072, "max_completion_tokens": 16384},
                )
            data.append(item)
        return web.json_response({"object": "list", "data": data})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.log(request, body)
        if (denied := self.unauthorised(request)) is not None:
            return denied
        model = body.get("model")
        if model not in self.models:
            return self.error(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                "invalid_request_error",
                "model_not_found",
            )
        kind = (body.get("response_format") or {}).get("type")
        if kind is not None and self.formats is not None and kind not in self.formats:
            return self.error(
                self.format_status,
                f"response_format of type {kind} is not supported by this server",
                "invalid_request_error",
            )
        fault = self.next_fault()
        await self.delay(fault)
        if fault == "401":
            return self.error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        if fault == "404":
            return self.error(404, f"The model `{model}` does not exist.", "invalid_request_error", "model_not_found")
        if fault == "429":
            return self.error(429, "Rate limit reached for requests", "requests", "rate_limit_exceeded",
                              headers={"Retry-After": "1"})  # fmt: skip
        if fault == "500":
            return self.error(500, "The server had an error while processing your request.", "server_error")
        prompt = next((m["content"] for m in reversed(body.get("messages", [])) if m.get("role") == "user"), "")
        text = self.answer_text(prompt, fault)
        usage: dict[str, Any] = {"prompt_tokens": count_tokens(prompt), "completion_tokens": count_tokens(text)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if model in self.prices and (body.get("usage") or {}).get("include"):
            p, c = self.prices[model]
            usage["cost"] = usage["prompt_tokens"] * p + usage["completion_tokens"] * c
        ident, created = f"chatcmpl-{self._counter}", int(time.time())
        if not body.get("stream"):
            return web.json_response(
                {
                    "id": ident,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text, "refusal": None},
                            "logprobs": None,
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        if self.prefix == "/api/v1":
            await response.write(b": OPENROUTER PROCESSING\n\n")

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
            event = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
                **extra,
            }
            return f"data: {json.dumps(event)}\n\n".encode()

        await response.write(chunk({"role": "assistant", "content": ""}))
        for piece in re.findall(r".{1,16}", text, re.S):
            await response.write(chunk({"content": piece}))
        await response.write(chunk({}, "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            event = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model}
            await response.write(f"data: {json.dumps({**event, 'choices': [], 'usage': usage})}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response
