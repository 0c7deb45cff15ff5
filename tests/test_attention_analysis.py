"""attention_analysis: word positions, word-to-word attention, the referent-pair scoring and the relations
between words of chapter 4."""

from __future__ import annotations

import pytest
import torch

from transformer_course import attention_analysis, pretrained
from transformer_course.attention_analysis import ReferentPair
from transformer_course.tokenization import SPECIAL_TOKENS, WordPieceTokenizer

VOCAB = [*SPECIAL_TOKENS, "the", "animal", "street", "it", "was", "wide", "tired", "play", "##ing", "."]
VOCAB.append("##s")


@pytest.fixture(scope="module")
def tok():
    return WordPieceTokenizer(VOCAB)


@pytest.fixture(scope="module")
def minilm():
    return pretrained.load_minilm(device="cpu")


# ------------------------------------------------------------------------------ word positions


def test_word_positions_index_the_encoded_ids(tok):
    text = "The animal was playing. It was wide."
    ids = tok.encode(text)
    for word in ("animal", "playing", "it", "wide"):
        positions = attention_analysis.word_positions(tok, text, word)
        assert [tok.id_to_token[ids[p]] for p in positions] == tok.tokenize(word)
    assert attention_analysis.word_positions(tok, text, "the") == [1]  # [CLS] is position 0
    assert attention_analysis.word_positions(tok, text, "was", occurrence=1) == [8]


def test_word_positions_match_whole_words_only(tok):
    # "plays" is play ##s: looking for "play" must not match its first piece.
    with pytest.raises(ValueError, match="occurs 0 time"):
        attention_analysis.word_positions(tok, "It plays.", "play")
    assert attention_analysis.word_positions(tok, "It plays. It play.", "play") == [6]


def test_word_positions_reject_bad_input(tok):
    with pytest.raises(ValueError, match="occurs 1 time"):
        attention_analysis.word_positions(tok, "it was wide", "it", occurrence=1)
    with pytest.raises(ValueError, match="one word"):
        attention_analysis.word_positions(tok, "it was wide", "it was")
    with pytest.raises(ValueError, match="occurrence"):
        attention_analysis.word_positions(tok, "it was wide", "it", occurrence=-1)
    with pytest.raises(TypeError, match="text and word"):
        attention_analysis.word_positions(tok, ["it"], "it")


# ------------------------------------------------------------------------------ attention_from_to


def test_attention_from_to_sums_keys_and_averages_queries():
    generator = torch.Generator().manual_seed(0)
    weights = [torch.softmax(torch.randn(2, 3, 5, 5, generator=generator), -1) for _ in range(4)]
    got = attention_analysis.attention_from_to(weights, [1, 2], [3, 4], batch_index=1)  # (L, H)
    assert got.shape == (4, 3)
    for layer in range(4):
        for head in range(3):
            w = weights[layer][1, head]
            expected = (w[1, 3] + w[1, 4] + w[2, 3] + w[2, 4]) / 2
            assert torch.isclose(got[layer, head], expected)
    one = attention_analysis.attention_from_to(torch.stack(weights), [2], [0])
    assert torch.equal(one, torch.stack([w[0, :, 2, 0] for w in weights]))


def test_attention_from_to_rejects_bad_input():
    weights = torch.full((1, 1, 1, 3, 3), 1 / 3)
    with pytest.raises(ValueError, match="key_positions"):
        attention_analysis.attention_from_to(weights, [0], [3])
    with pytest.raises(ValueError, match="query_positions"):
        attention_analysis.attention_from_to(weights, [], [0])
    with pytest.raises(ValueError, match="batch_index"):
        attention_analysis.attention_from_to(weights, [0], [0], batch_index=1)
    with pytest.raises(ValueError, match=r"\(L, B, H, T, T\)"):
        attention_analysis.attention_from_to(torch.ones(2, 3, 3), [0], [0])
    with pytest.raises(TypeError, match="weights"):
        attention_analysis.attention_from_to("weights", [0], [0])


# ------------------------------------------------------------------------------ pairs and scoring


def test_referent_pair_validates_itself():
    pair = ReferentPair("A {} b", ("x", "y"), ("u", "v"))
    assert pair.texts() == ("A u b", "A v b")
    with pytest.raises(ValueError, match="template"):
        ReferentPair("no slot", ("x", "y"), ("u", "v"))
    with pytest.raises(TypeError, match="candidates"):
        ReferentPair("A {}", ["x", "y"], ("u", "v"))
    with pytest.raises(ValueError, match="two different"):
        ReferentPair("A {}", ("x", "x"), ("u", "v"))


def test_pair_correct_follows_the_referent_not_a_fixed_preference():
    scores = torch.zeros(3, 2, 2, 1, 1)  # (N, 2, 2, L, H)
    scores[0, 0, 0], scores[0, 1, 1] = 0.5, 0.5  # follows the referent: right
    scores[1, :, 0] = 0.5  # always candidate 0, same amount: no move, not right
    scores[2, 0, 1], scores[2, 1, 0] = 0.5, 0.5  # moves the wrong way
    assert attention_analysis.pair_correct(scores).flatten().tolist() == [True, False, False]
    scores[1, 0, 0] += 1e-4  # a move far below the tolerance is noise, not a choice
    assert attention_analysis.pair_correct(scores).flatten().tolist() == [True, False, False]
    assert attention_analysis.pair_correct(scores, tolerance=0.0).flatten().tolist() == [True, True, False]
    with pytest.raises(ValueError, match="tolerance"):
        attention_analysis.pair_correct(scores, tolerance=-1.0)
    with pytest.raises(ValueError, match=r"\(N, 2, 2, L, H\)"):
        attention_analysis.pair_correct(torch.zeros(3, 2, 1, 1))


def test_best_head_counts_only_the_given_pairs():
    correct = torch.zeros(4, 2, 2, dtype=torch.bool)
    correct[0:2, 0, 1] = True  # good on pairs 0, 1
    correct[2:4, 1, 0] = True  # good on pairs 2, 3
    assert attention_analysis.best_head(correct, [0, 1]) == (0, 1)
    assert attention_analysis.best_head(correct, [2, 3]) == (1, 0)
    with pytest.raises(ValueError, match="pair_indices"):
        attention_analysis.best_head(correct, [4])


def test_binomial_p_value_matches_small_cases():
    assert attention_analysis.binomial_p_value(0, 3) == 1.0
    assert attention_analysis.binomial_p_value(2, 3) == pytest.approx(0.5)  # (3 + 1) / 8
    assert attention_analysis.binomial_p_value(3, 3, p=0.25) == pytest.approx(1 / 64)
    with pytest.raises(ValueError, match="successes"):
        attention_analysis.binomial_p_value(4, 3)
    with pytest.raises(ValueError, match="p:"):
        attention_analysis.binomial_p_value(1, 3, p=1.0)


def test_pronoun_attention_reads_the_real_model(minilm):
    tokenizer, model = minilm
    pair = ReferentPair(
        "The animal didn't cross the street because it was too {}.", ("animal", "street"), ("tired", "wide")
    )
    scores = attention_analysis.pronoun_attention(tokenizer, model, [pair, pair])
    assert scores.shape == (2, 2, 2, 6, 12)
    assert torch.equal(scores[0], scores[1])  # the same pair twice: padding changes nothing here
    text = pair.texts()[1]
    batch = tokenizer([text])
    with torch.no_grad():
        _, weights = model(batch["input_ids"], batch["attention_mask"], return_attention=True)
    it = attention_analysis.word_positions(tokenizer, text, "it")[0]
    street = attention_analysis.word_positions(tokenizer, text, "street")[0]
    direct = torch.stack([w[0, :, it, street] for w in weights])  # (L, H)
    assert torch.allclose(scores[0, 1, 1], direct, atol=1e-6)
    assert ((scores >= 0) & (scores <= 1)).all()


def test_pronoun_attention_rejects_bad_pairs(minilm):
    tokenizer, model = minilm
    with pytest.raises(ValueError, match="not in"):
        no_pronoun = ReferentPair("A cat and a {}.", ("cat", "dog"), ("dog", "x"))
        attention_analysis.pronoun_attention(tokenizer, model, [no_pronoun])
    late = ReferentPair("It saw the cat and the {}.", ("cat", "dog"), ("dog", "rat"))
    with pytest.raises(ValueError, match="after the pronoun"):
        attention_analysis.pronoun_attention(tokenizer, model, [late])
    with pytest.raises(TypeError, match="pairs"):
        attention_analysis.pronoun_attention(tokenizer, model, [])


# ------------------------------------------------------------------------------ relations between words


def test_relation_validates_itself():
    assert attention_analysis.Relation(0, (1,), (2, 3)).target == (2, 3)
    with pytest.raises(ValueError, match="query"):
        attention_analysis.Relation(0, (), (2,))
    with pytest.raises(ValueError, match="target"):
        attention_analysis.Relation(0, (1,), (0,))  # position 0 is [CLS], never a word
    with pytest.raises(ValueError, match="overlap"):
        attention_analysis.Relation(0, (1, 2), (2,))


def test_annotate_resolves_words_and_occurrences(tok):
    texts = ["The animal was playing. It was wide.", "It was the street."]
    pairs = [[("the", "animal"), (("was", 1), "wide"), ("animal", "playing")], []]
    relations = attention_analysis.annotate(tok, texts, pairs)
    Relation = attention_analysis.Relation
    assert relations == [Relation(0, (1,), (2,)), Relation(0, (8,), (9,)), Relation(0, (2,), (4, 5))]
    second = attention_analysis.annotate(tok, texts[::-1], [[("the", "street")], []])
    assert second == [Relation(0, (3,), (4,))]  # sentence indexes follow the list
    with pytest.raises(ValueError, match="same length"):
        attention_analysis.annotate(tok, texts, [[]])
    with pytest.raises(ValueError, match="occurs 0 time"):
        attention_analysis.annotate(tok, texts[:1], [[("the", "street")]])


def test_word_piece_relations_link_each_piece_to_the_rest_of_its_word(tok, minilm):
    Relation = attention_analysis.Relation
    assert attention_analysis.word_piece_relations(tok, ["It was wide.", "The animal was playing."]) == [
        Relation(1, (4,), (5,)), Relation(1, (5,), (4,))
    ]
    tokenizer, _ = minilm
    text = "A bookshelf and a cat."  # books ##hel ##f: three pieces, at positions 2, 3 and 4
    assert tokenizer.tokenize(text)[1:4] == ["books", "##hel", "##f"]
    assert attention_analysis.word_piece_relations(tokenizer, [text]) == [
        Relation(0, (2,), (3, 4)), Relation(0, (3,), (2, 4)), Relation(0, (4,), (2, 3))
    ]
    with pytest.raises(TypeError, match="one str"):
        attention_analysis.word_piece_relations(tokenizer, text)


def _one_hot_rows(T, targets):
    """(1, 1, 1, T, T) weights in which row q puts weight 0.6 on targets[q] and 0.4 on [CLS]."""
    weights = torch.zeros(1, 1, 1, T, T)
    for q, t in targets.items():
        weights[0, 0, 0, q, 0] = 0.4
        weights[0, 0, 0, q, t] = 0.6
    return weights


def test_most_attended_skips_cls_sep_and_the_query_itself():
    T = 6  # [CLS] w1 w2 w3 w4 [SEP]
    weights = torch.zeros(1, 1, 1, T, T)
    weights[0, 0, 0, 1] = torch.tensor([0.5, 0.2, 0.05, 0.15, 0.0, 0.1])  # [CLS] and itself beat w3
    mask = torch.ones(1, T, dtype=torch.long)
    relation = attention_analysis.Relation(0, (1,), (3,))
    assert attention_analysis.most_attended(weights, [relation], mask).tolist() == [[[3]]]
    weights[0, 0, 0, 1] = torch.tensor([0.0, 0.0, 0.1, 0.1, 0.1, 0.7])  # [SEP] is skipped too; ties: first
    positions, margin = attention_analysis.most_attended(weights, [relation], mask, return_margin=True)
    assert positions.tolist() == [[[2]]] and margin.item() == 0.0


def test_most_attended_averages_the_query_pieces_and_ignores_padding():
    T = 7  # sentence 0: [CLS] a b c d [SEP] [PAD]
    weights = torch.zeros(1, 2, 1, T, T)  # (L, B, H, T, T)
    weights[0, 0, 0, 1, 3] = 1.0  # piece 1 looks at c
    weights[0, 0, 0, 2, 3] = 0.2  # piece 2 mostly at the padding (never a candidate)
    weights[0, 0, 0, 2, 6] = 0.8
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 0], [1] * 7])
    relation = attention_analysis.Relation(0, (1, 2), (3,))
    positions, margin = attention_analysis.most_attended(weights, [relation], mask, return_margin=True)
    assert positions.item() == 3 and margin.item() == pytest.approx(0.6)  # c: (1.0 + 0.2) / 2, d: 0
    with pytest.raises(ValueError, match="beyond"):
        attention_analysis.most_attended(weights, [attention_analysis.Relation(0, (1,), (5,))], mask)
    with pytest.raises(ValueError, match="attention_mask"):
        attention_analysis.most_attended(weights, [relation], mask[:1])


def test_relation_hits_count_any_piece_of_the_target():
    weights = torch.zeros(1, 1, 2, 6, 6)  # two heads
    weights[0, 0, 0, 1, 3] = 1.0  # head 0: to the second piece of the target
    weights[0, 0, 1, 1, 2] = 1.0  # head 1: to the first piece
    weights[0, 0, :, 4, 1] = 1.0  # from position 4, both heads to position 1
    relations = [attention_analysis.Relation(0, (1,), (2, 3)), attention_analysis.Relation(0, (4,), (2,))]
    hits = attention_analysis.relation_hits(weights, relations, torch.ones(1, 6))
    assert hits.dtype == torch.bool and hits.tolist() == [[[True, True]], [[False, False]]]


def test_offset_hits_count_from_the_edges_of_the_query_word():
    Relation = attention_analysis.Relation
    relations = [Relation(0, (2, 3), (4,)), Relation(0, (2, 3), (1,)), Relation(0, (5,), (2, 3))]
    hits = attention_analysis.offset_hits(relations, [-3, -1, 1, 2])
    assert hits.tolist() == [
        [False, False, True, False],  # the next token after the query's last piece
        [False, True, False, False],  # the token before its first piece
        [True, False, False, False],  # three before: the first piece of the target
    ]
    for bad in ([], [0], [True]):
        with pytest.raises(ValueError, match="offsets"):
            attention_analysis.offset_hits(relations, bad)


def test_relation_hits_on_the_real_model_read_its_attention(minilm):
    tokenizer, model = minilm
    texts = ["The farmer with the red hat pushed a wheelbarrow.", "A tired locksmith opened the gate."]
    relations = attention_analysis.annotate(tokenizer, texts, [[("the", "farmer"), ("a", "wheelbarrow")],
                                                                [("a", "locksmith"), ("the", "gate")]])
    batch = tokenizer(texts)
    with torch.no_grad():
        _, weights = model(batch["input_ids"], batch["attention_mask"], return_attention=True)
    positions = attention_analysis.most_attended(weights, relations, batch["attention_mask"])
    hits = attention_analysis.relation_hits(weights, relations, batch["attention_mask"])
    assert positions.shape == hits.shape == (4, 6, 12)
    for n, relation in enumerate(relations):
        length = int(batch["attention_mask"][relation.sentence].sum())
        for layer in range(6):
            row = weights[layer][relation.sentence, :, relation.query[0], :length].clone()  # (H, T')
            row[:, [0, length - 1, relation.query[0]]] = -1.0
            assert torch.equal(positions[n, layer], row.argmax(-1))
            assert torch.equal(hits[n, layer], torch.isin(row.argmax(-1), torch.tensor(relation.target)))
