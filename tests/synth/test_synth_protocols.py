"""The protocol servers are faithful (the official clients read them) and our providers speak to them correctly."""

from __future__ import annotations

import asyncio
import socket

import ollama
import openai
import pytest

from ftstudio.synth.providers import ProviderError, create, names
from ftstudio.synth.providers.ollama import parse_ollama_host
from protocol_servers import OpenAIServer

PROMPT = 'Write 2 question-answer pairs.\n"""\nThe river Kalomi is long and slow. Farmers along it grow barley.\n"""'


def run(coro):
    return asyncio.run(coro)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- faithfulness: the official clients -----------------------------------------------------------------------------
def test_official_ollama_client_reads_the_ollama_server(ollama_server):
    client = ollama.Client(host=ollama_server.url)
    assert [m.model for m in client.list().models] == ["llama3:8b", "qwen2:7b"]
    reply = client.chat(model="llama3:8b", messages=[{"role": "user", "content": PROMPT}], format={"type": "object"})
    assert "Farmers along it grow barley." in reply.message.content and reply.done and reply.eval_count > 0
    streamed = list(client.chat(model="llama3:8b", messages=[{"role": "user", "content": PROMPT}], stream=True))
    assert len(streamed) > 2 and streamed[-1].done and not streamed[0].done
    assert "".join(part.message.content for part in streamed) == reply.message.content
    assert client.show("llama3:8b").modelinfo["llama.context_length"] == 8192
    with pytest.raises(ollama.ResponseError) as caught:
        client.chat(model="mistral", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 404 and "try pulling it first" in caught.value.error
    import json
    import urllib.request

    with urllib.request.urlopen(f"{ollama_server.url}/api/version") as resp:
        assert json.load(resp)["version"].count(".") == 2


def test_official_openai_client_reads_the_openai_server():
    with OpenAIServer(["m"], api_key="sk-right") as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-right", max_retries=0)
        assert [m.id for m in client.models.list()] == ["m"]
        reply = client.chat.completions.create(model="m", messages=[{"role": "user", "content": PROMPT}])
        assert "barley" in reply.choices[0].message.content and reply.usage.total_tokens > 0
        stream = client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": PROMPT}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        assert (
            "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == reply.choices[0].message.content
        )
        assert chunks[-1].usage.completion_tokens > 0
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=server.base_url, api_key="sk-wrong", max_retries=0).chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}]
            )
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
        server.script("429", "429")
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        assert caught.value.response.headers["retry-after"] == "1"
        # With retries, the official client honours Retry-After and then succeeds.
        retrying = openai.OpenAI(base_url=server.base_url, api_key="sk-right", max_retries=1)
        assert retrying.chat.completions.create(model="m", messages=[{"role": "user", "content": PROMPT}]).choices
        server.script("500")
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])


def test_openrouter_stream_comments_and_prices_reach_the_official_client(openrouter_server):
    client = openai.OpenAI(base_url=openrouter_server.base_url, api_key="sk-or-secret-123456", max_retries=0)
    model = client.models.list().data[0]
    assert model.context_length == 131072 and float(model.pricing["prompt"]) == 5e-7
    stream = client.chat.completions.create(model=model.id, messages=[{"role": "user", "content": PROMPT}], stream=True)
    assert "barley" in "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


# -- our providers ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "url"),
    [
        (None, "http://127.0.0.1:11434"),
        ("", "http://127.0.0.1:11434"),
        ("0.0.0.0", "http://0.0.0.0:11434"),
        ("0.0.0.0:11434", "http://0.0.0.0:11434"),
        (":56789", "http://127.0.0.1:56789"),
        ("example.com", "http://example.com:11434"),
        ("https://example.com", "https://example.com:443"),
        ("http://example.com", "http://example.com:80"),
        ("http://example.com:8080/ollama/", "http://example.com:8080/ollama"),
        ("[::1]:11434", "http://[::1]:11434"),
    ],
)
def test_ollama_host_is_read_like_ollamas_own_client(value, url):
    assert parse_ollama_host(value) == url
    # The reference: the official client's own parser.
    from ollama._client import _parse_host

    assert _parse_host(value) == url


def test_registry_holds_the_builtins():
    assert names() == ["llamacpp", "offline", "ollama", "openai", "openrouter"]


def test_ollama_provider_lists_chats_and_names_the_fixes(ollama_server, monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{ollama_server.port}")

    async def main():
        async with create("ollama") as p:  # address from OLLAMA_HOST
            models = await p.list_models()
            reply = await p.chat("llama3:8b", [{"role": "user", "content": PROMPT}], schema={"type": "object"},
                                 temperature=0.2, seed=3, num_ctx=4096)  # fmt: skip
            with pytest.raises(ProviderError) as missing:
                await p.check("mistral")
            return models, reply, missing.value

    models, reply, missing = run(main())
    assert [(m.id, m.context_length) for m in models] == [("llama3:8b", 8192), ("qwen2:7b", 8192)]
    assert "barley" in reply.text and reply.tokens_out > 0 and reply.cost_usd == 0.0
    sent = ollama_server.chat_requests()[-1]["body"]
    assert sent["format"] == {"type": "object"} and sent["stream"] is False
    assert sent["options"] == {"temperature": 0.2, "seed": 3, "num_ctx": 4096}
    assert missing.kind == "model_missing" and "ollama pull mistral" in missing.hint


def test_ollama_provider_without_a_server_says_how_to_start_one():
    async def main():
        async with create("ollama", base_url=f"127.0.0.1:{free_port()}") as p:
            await p.list_models()

    with pytest.raises(ProviderError) as caught:
        run(main())
    assert caught.value.kind == "unreachable" and "ollama serve" in caught.value.hint


def _forms(server) -> list[str | None]:
    return [(r["body"].get("response_format") or {}).get("type") for r in server.chat_requests()]


@pytest.mark.parametrize(
    ("accepted", "status", "expected_forms", "settled"),
    [
        (None, 400, ["json_schema"] * 3, "json_schema"),  # a server with json_schema keeps it
        (("json_object",), 500, ["json_schema"] + ["json_object"] * 3, "json_object"),  # llama-cpp-python's answer
        (("json_object",), 422, ["json_schema"] + ["json_object"] * 3, "json_object"),
        ((), 400, ["json_schema", "json_object", None, None, None], None),  # no structured output at all
        ((), 501, ["json_schema", "json_object", None, None, None], None),
    ],
)
def test_openai_provider_negotiates_structured_output_once_per_server(accepted, status, expected_forms, settled):
    with OpenAIServer(["m"], formats=accepted, format_status=status) as server:

        async def main():
            async with create("openai", base_url=server.url) as p:  # /v1 is added to a bare address
                replies = [await p.chat("m", [{"role": "user", "content": PROMPT}], schema={"type": "object"})]
                # Many at once after that: the server's form is known, nothing is refused again.
                replies += await asyncio.gather(
                    *(p.chat("m", [{"role": "user", "content": PROMPT}], schema={"type": "object"}) for _ in range(2))
                )
                return replies, p.structured_form

        replies, form = run(main())
    assert all("barley" in r.text for r in replies) and form == settled
    assert all(r.structured == (settled is not None) for r in replies)
    assert _forms(server) == expected_forms
    sent = [r["body"].get("response_format") for r in server.chat_requests()]
    assert all(f["schema"] == {"type": "object"} for f in sent if f and f["type"] == "json_object")


def test_concurrent_first_requests_learn_the_form_from_one_refusal():
    with OpenAIServer(["m"], formats=("json_object",), format_status=500, latency_s=0.05) as server:

        async def main():
            async with create("openai", base_url=server.url) as p:
                await asyncio.gather(
                    *(p.chat("m", [{"role": "user", "content": PROMPT}], schema={"type": "object"}) for _ in range(8))
                )

        run(main())
    assert _forms(server) == ["json_schema"] + ["json_object"] * 8


def test_only_refusals_that_name_the_format_step_down():
    # A 500 that says nothing about the format is an ordinary server error (retryable), not a step down; a 400
    # about something else is a bad request; neither changes the form the server is asked for.
    with OpenAIServer(["m"]) as server:
        server.script("500")

        async def main():
            async with create("openai", base_url=server.url) as p:
                with pytest.raises(ProviderError) as caught:
                    await p.chat("m", [{"role": "user", "content": PROMPT}], schema={"type": "object"})
                reply = await p.chat("m", [{"role": "user", "content": PROMPT}], schema={"type": "object"})
                return caught.value, reply, p.structured_form

        error, reply, form = run(main())
    assert error.kind == "server" and error.retryable and reply.structured and form == "json_schema"
    assert _forms(server) == ["json_schema", "json_schema"]


def test_openai_provider_classifies_errors():
    with OpenAIServer(["m"], api_key="sk-good") as server:

        async def attempt(key, model="m", fault=None):
            if fault:
                server.script(fault)
            async with create("openai", base_url=server.base_url, api_key=key) as p:
                try:
                    await p.chat(model, [{"role": "user", "content": "hi"}])
                except ProviderError as exc:
                    return exc

        bad_key = run(attempt("sk-bad"))
        assert bad_key.kind == "auth" and "sk-bad" not in str(bad_key) + str(bad_key.hint)
        assert run(attempt("sk-good", "other")).kind == "model_missing"
        limited = run(attempt("sk-good", fault="429"))
        assert limited.kind == "rate_limit" and limited.retry_after == 1.0
        assert run(attempt("sk-good", fault="500")).kind == "server"


def test_openrouter_needs_a_key_sends_attribution_and_reports_cost(openrouter_server, monkeypatch):
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    model = "meta-llama/llama-3-70b-instruct"

    async def main(key):
        async with create("openrouter", base_url=openrouter_server.base_url, api_key=key) as p:
            info = await p.check(model)
            return info, await p.chat(model, [{"role": "user", "content": PROMPT}], schema={"type": "object"})

    with pytest.raises(ProviderError) as caught:
        run(main(None))
    assert caught.value.kind == "auth" and "OPENROUTER_API_KEY" in caught.value.hint
    info, reply = run(main("sk-or-secret-123456"))
    assert info.prompt_price == 5e-7 and info.context_length == 131072
    assert reply.cost_usd == pytest.approx(reply.tokens_in * 5e-7 + reply.tokens_out * 1e-6)
    sent = openrouter_server.chat_requests()[-1]
    assert sent["headers"]["X-Title"] == "ftstudio" and sent["headers"]["HTTP-Referer"].startswith("https://")
    assert sent["body"]["response_format"]["type"] == "json_schema" and sent["body"]["usage"] == {"include": True}


def test_retry_after_forms_and_backoff_with_jitter():
    import random
    from datetime import datetime, timedelta, timezone
    from email.utils import format_datetime

    from ftstudio.synth.calls import BACKOFF_CAP_S, backoff_delay
    from ftstudio.synth.providers.base import parse_retry_after

    assert parse_retry_after("3") == 3.0 and parse_retry_after(None) is None and parse_retry_after("soon") is None
    later = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    assert 25 < parse_retry_after(later) <= 30
    rng = random.Random(0)
    first = [backoff_delay(1, None, rng) for _ in range(200)]
    third = [backoff_delay(3, None, rng) for _ in range(200)]
    assert 0.25 <= min(first) < max(first) <= 0.75 and 1.0 <= min(third) < max(third) <= 3.0
    assert max(backoff_delay(30, None, rng) for _ in range(50)) <= BACKOFF_CAP_S * 1.5
    assert 1.0 <= backoff_delay(1, 1.0, rng) <= 1.1  # the server's wish wins over the schedule
