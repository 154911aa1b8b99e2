"""The chunker's promises, as properties over generated text: within budget, nothing lost, nothing empty, overlap as
asked, structure kept. Run with the estimate and with a real BPE tokenizer trained here."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ftstudio.knowledge.chunking import chunk_sections, split_span
from ftstudio.knowledge.document import Section, clean_text
from ftstudio.knowledge.tokens import EstimateCounter, TokenizerCounter

WORDS = ["fraction", "whole", "part", "a", "of", "the", "numerator", "über", "数学", "x" * 40, "naïve", "1/2", "Émile"]
word = st.one_of(st.sampled_from(WORDS), st.text(st.characters(categories=["L", "N", "P"]), min_size=1, max_size=12))
sentence = st.lists(word, min_size=1, max_size=25).map(lambda ws: " ".join(ws) + ".")
paragraph = st.lists(sentence, min_size=1, max_size=8).map(" ".join)
document_text = st.lists(paragraph, min_size=1, max_size=12).map(lambda ps: clean_text("\n\n".join(ps)))


@pytest.fixture(scope="module")
def bpe_counter(tmp_path_factory):
    """A real byte-level BPE tokenizer.json, trained on the spot (no download)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([" ".join(WORDS) * 20, "the numerator of a fraction over the whole part " * 50], trainer)
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    tok.save(str(path))
    return TokenizerCounter(path)


def _check_spans(text, spans, measure, budget, overlap):
    assert spans, "non-empty text gave no chunk"
    covered = [False] * len(text)
    prev = None
    for start, end in spans:
        piece = text[start:end]
        assert piece and piece == piece.strip(), "empty or unstripped chunk"
        assert measure.count(start, end) <= budget
        for i in range(start, end):
            covered[i] = True
        if prev is not None:
            assert start > prev[0] and end > prev[1], "chunks out of order or not advancing"
            shared = max(0, prev[1] - start)
            assert shared == 0 or measure.count(start, prev[1]) <= overlap, "overlap larger than asked"
            # A cut lies between words unless a single word is longer than the whole budget.
            cut = prev[1]
            if cut < len(text) and text[cut] not in " \n" and text[cut - 1] not in " \n.!?…。！？\"'”’»)]":
                word_start = max(text.rfind(" ", 0, cut), text.rfind("\n", 0, cut)) + 1
                next_space = [p for p in (text.find(" ", cut), text.find("\n", cut)) if p >= 0]
                word_end = min(next_space) if next_space else len(text)
                assert measure.count(word_start, word_end) > budget // 4, f"cut inside the word at {cut}"
        prev = (start, end)
    lost = [i for i, ch in enumerate(text) if not ch.isspace() and not covered[i]]
    assert not lost, f"text lost at {lost[:5]}"


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=document_text, budget=st.integers(16, 200), overlap_share=st.floats(0, 0.5))
def test_estimate_properties(text, budget, overlap_share):
    overlap = int(budget * overlap_share)
    measure = EstimateCounter().prepare(text)
    _check_spans(text, split_span(text, 0, len(text), measure, budget, overlap), measure, budget, overlap)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(text=document_text, budget=st.integers(16, 120), overlap_share=st.floats(0, 0.5))
def test_real_tokenizer_properties(bpe_counter, text, budget, overlap_share):
    overlap = int(budget * overlap_share)
    measure = bpe_counter.prepare(text)
    _check_spans(text, split_span(text, 0, len(text), measure, budget, overlap), measure, budget, overlap)


def test_offsets_count_agrees_with_encoding_chunks_alone(bpe_counter):
    text = clean_text(" ".join(["The numerator of a fraction counts parts of the whole."] * 60))
    for chunk in chunk_sections([Section(text)], bpe_counter, 64, 8):
        alone = bpe_counter.count(chunk.text)
        assert chunk.tokens <= 64 and abs(alone - chunk.tokens) <= 2


def test_overlap_is_used_when_asked_and_begins_at_a_sentence_start():
    text = " ".join(f"Sentence {i} is short." for i in range(400))
    measure = EstimateCounter().prepare(text)
    spans = split_span(text, 0, len(text), measure, 100, 20)
    shared = [measure.count(b[0], a[1]) for a, b in zip(spans, spans[1:], strict=False)]
    assert all(0 < s <= 20 for s in shared)
    assert all(text[a:].startswith("Sentence ") and text[a - 2] == "." for a, _ in spans[1:])
    assert split_span(text, 0, len(text), measure, 100, 0)[1][0] > spans[1][0]  # no overlap: starts later
    # No sentence start within reach: no overlap rather than a chunk that begins mid-sentence.
    words = " ".join(f"word{i}" for i in range(2000))
    measure = EstimateCounter().prepare(words)
    spans = split_span(words, 0, len(words), measure, 100, 20)
    assert all(b[0] >= a[1] for a, b in zip(spans, spans[1:], strict=False))


def test_a_chain_of_headings_joins_the_section_with_text():
    sections = [
        Section("Live Systems Manual", ("Live Systems Manual",)),
        Section("About", ("About",)),
        Section("About this manual", ("About", "About this manual")),
        Section("1. About this manual\n\nThis manual is the reference.", ("About", "1. About this manual")),
        Section("2. Empty chapter", ("2. Empty chapter",)),
    ]
    chunks = chunk_sections(sections, EstimateCounter(), 128, 16)
    assert [c.heading_path for c in chunks] == [("About", "1. About this manual"), ("2. Empty chapter",)]
    assert chunks[0].text.startswith("Live Systems Manual\n\nAbout\n\nAbout this manual\n\n1. About")


def test_headings_are_hard_boundaries_and_pages_are_ranges():
    counter = EstimateCounter()
    long_para = " ".join(["Fractions name parts of a whole."] * 40)
    sections = [
        Section("# Book", ("Book",)),  # a heading alone joins the first subsection below it
        Section("## Fractions\n\n" + long_para, ("Book", "Fractions")),
        Section("## Decimals\n\nTenths and hundredths.", ("Book", "Decimals")),
        Section("Page one text. " * 30, (), page=1),
        Section("Page two text. " * 30, (), page=2),
    ]
    chunks = chunk_sections(sections, counter, 128, 16)
    paths = [c.heading_path for c in chunks]
    assert paths[0] == ("Book", "Fractions") and chunks[0].text.startswith("# Book\n\n## Fractions")
    decimals = [c for c in chunks if c.heading_path == ("Book", "Decimals")]
    assert len(decimals) == 1 and decimals[0].text == "## Decimals\n\nTenths and hundredths."
    paged = [c for c in chunks if c.page_start is not None]
    assert paged[0].page_start == 1 and paged[-1].page_end == 2
    assert any(c.page_start == 1 and c.page_end == 2 for c in paged)
    assert all(c.tokens <= 128 and c.text.strip() == c.text and c.text for c in chunks)


def test_a_word_longer_than_the_budget_is_the_only_cut_inside_a_word():
    blob = "A" * 1000
    text = f"before {blob} after"
    measure = EstimateCounter().prepare(text)
    spans = split_span(text, 0, len(text), measure, 32, 0)
    assert all(measure.count(a, b) <= 32 for a, b in spans)
    assert "".join(text[a:b] for a, b in spans).replace(" ", "") == text.replace(" ", "")


def test_empty_and_whitespace_documents_give_no_chunks():
    assert chunk_sections([Section(""), Section("  \n\n ")], EstimateCounter()) == []
    with pytest.raises(ValueError):
        chunk_sections([Section("x")], EstimateCounter(), 64, 64)
