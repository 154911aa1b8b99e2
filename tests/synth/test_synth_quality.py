"""The filters: length rules, lexical grounding, near-duplicate questions."""

from __future__ import annotations

from ftstudio.synth.quality import DuplicateIndex, content_terms, grounding_score, length_problem

CHUNK = "The river Kalomi flows through the valley of Benrostav. Farmers along the river grow barley."


def test_grounding_separates_supported_from_invented_answers():
    terms = set(content_terms(CHUNK))
    assert grounding_score("Farmers along the river Kalomi grow barley.", terms) == 1.0
    assert grounding_score("Fishermen catch salmon in the northern ocean during winter.", terms) < 0.2
    assert grounding_score("", terms) == 0.0


def test_length_rules():
    assert length_problem("", "answer text here", min_q=5, min_a=5, max_a=100) == "empty"
    assert length_problem("Why?", "Because it is.", min_q=5, min_a=5, max_a=100) == "too_short"
    assert length_problem("Why is it so?", "x" * 101, min_q=5, min_a=5, max_a=100) == "too_long"
    assert length_problem("Why is it so?", "Because it is.", min_q=5, min_a=5, max_a=100) is None


def test_near_duplicates_are_caught_and_distinct_questions_kept():
    index = DuplicateIndex(0.8)
    assert index.add_if_new("What crop do the farmers along the river Kalomi grow in the valley?")
    assert not index.add_if_new("What crop do the farmers along the river Kalomi grow in the valley ?!")
    assert not index.add_if_new("what CROP do the farmers along the river kalomi grow in the valley")
    assert index.add_if_new("How long is the river Kalomi and which valley does it flow through?")
    assert len(index) == 2


def test_duplicate_index_scales_to_thousands():
    index = DuplicateIndex(0.8)
    kept = sum(index.add_if_new(f"How many apples did shop number {i} sell on day {i * 7}?") for i in range(3000))
    assert kept == 3000
    assert not index.add_if_new("How many apples did shop number 17 sell on day 119?")


def test_templated_questions_stay_cheap_and_near_duplicates_of_old_ones_are_still_caught():
    index = DuplicateIndex(0.8)
    template = "What does the material state about {i} river {j} and the valley of town {k}?"
    qs = [template.format(i=i, j=i * 3, k=i % 17) for i in range(3000)]
    assert all(index.add_if_new(q) for q in qs)
    # Buckets of the template's words are capped, yet an old question's near-duplicate is found.
    assert not index.add_if_new("Tell me: " + qs[5])
    assert not index.add_if_new(qs[7].upper().replace("?", " ?!"))
