"""SmolLM3: Llama's layout where every fourth layer has no RoPE, Llama 3's tokenizer, ChatML with a metadata header.

The template is Unsloth's edit of the published one (the one a registry package ships: see
templates/SOURCE.md): it writes no "Today Date" line and has no `{% generation %}` tag.

llama.cpp fixes the no-RoPE layers at every fourth (`n_no_rope_layer_step = 4`), so a config that places them
elsewhere is refused. The template picks the reasoning mode from `/think`/`/no_think` in the system text or
`enable_thinking`; Go templates cannot search text, so the Ollama template follows Ollama's think switch only.
"""

from __future__ import annotations

from ftstudio.families import pretokenizers
from ftstudio.families.base import Chat, Config, Family, Layout, Tiny, TinyTokenizer

_THINK = (
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face. Your role as an assistant involves "
    "thoroughly exploring questions through a systematic thinking process before providing the final precise and "
    "accurate solutions. This requires engaging in a comprehensive cycle of analysis, summarizing, exploration, "
    "reassessment, reflection, backtracking, and iteration to develop well-considered thinking process. Please "
    "structure your response into two main sections: Thought and Solution using the specified format: <think> "
    "Thought section </think> Solution section. In the Thought section, detail your reasoning process in steps. "
    "Each step should include detailed considerations such as analysing questions, summarizing relevant findings, "
    "brainstorming new ideas, verifying the accuracy of the current steps, refining any errors, and revisiting "
    "previous steps. In the Solution section, based on various attempts, explorations, and reflections from the "
    "Thought section, systematically present the final solution that you deem correct. The Solution section should "
    "be logical, accurate, and concise and detail necessary steps needed to reach the conclusion."
)
_NO_THINK = "You are a helpful AI assistant named SmolLM, trained by Hugging Face."
_EMPTY_THINK = "<think>\n\n</think>\n"
OLLAMA = (
    "{{ $think := not (and $.IsThinkSet (not $.Think)) }}"
    '{{ $system := "" }}{{ range .Messages }}{{ if eq .Role "system" }}{{ $system = .Content }}{{ end }}{{ end }}'
    "<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: June 2025\n"
    "Reasoning Mode: {{ if $think }}/think{{ else }}/no_think{{ end }}\n\n## Custom Instructions\n\n"
    "{{ if $system }}{{ $system }}\n\n{{ else if $think }}" + _THINK + "\n\n{{ else }}" + _NO_THINK + "\n\n{{ end }}"
    "<|im_end|>\n"
    '{{ range .Messages }}{{ if eq .Role "user" }}<|im_start|>user\n{{ .Content }}<|im_end|>\n'
    '{{ else if eq .Role "assistant" }}<|im_start|>assistant\n{{ if not $think }}' + _EMPTY_THINK + "{{ end }}"
    "{{ .Content }}<|im_end|>\n{{ end }}{{ end }}"
    "<|im_start|>assistant\n{{ if not $think }}" + _EMPTY_THINK + "{{ end }}"
)


def check(config: Config) -> str | None:
    layers = config.get("no_rope_layers")
    expected = [int((i + 1) % 4 != 0) for i in range(config["num_hidden_layers"])]
    if layers is not None and list(layers) != expected:
        return "its no-RoPE layers are not every fourth layer, the only placement llama.cpp runs"
    return None


FAMILY = Family(
    name="smollm3",
    label="SmolLM3",
    model_types=("smollm3",),
    layout=Layout("smollm3", permute_qk=True, check=check),
    chat=Chat(
        end_of_turn="<|im_end|>",
        system_role=True,
        markers=("<|im_start|>", "Reasoning Mode"),
        ollama=OLLAMA,
    ),  # fmt: skip
    tiny=Tiny(
        # Four layers, so that one of them (the fourth) really runs without RoPE.
        config={
            "model_type": "smollm3",
            "num_hidden_layers": 4,
            "tie_word_embeddings": True,
            "rope_theta": 5000000.0,
        },  # fmt: skip
        tokenizer=TinyTokenizer(
            "byte-level",
            specials=(
                "<|begin_of_text|>",
                "<|end_of_text|>",
                "<|im_start|>",
                "<|im_end|>",
                "<|finetune_right_pad_id|>",
            ),  # fmt: skip
            plain_added=("<think>", "</think>"),
            bos="<|begin_of_text|>",
            eos="<|im_end|>",
            pad="<|finetune_right_pad_id|>",
            split=pretokenizers.LLAMA3,
            ignore_merges=True,
            generation_eos=("<|im_end|>",),
        ),
        template="smollm3.jinja",
    ),
)
