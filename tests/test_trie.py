"""ItemTrie on hand-made token sequences: allowed sets, prefix identifiers, EOS, decode, errors, and rank_items."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genrec.decoding import ItemTrie, rank_items

EOS, PAD = 1, 0

# item positions:    0        1          2       3          4           5
CATALOG = [[5, 6], [5, 6, 7], [5, 8], [9, 10, 11], [9, 10, 12], [13]]


@pytest.fixture
def trie() -> ItemTrie:
    return ItemTrie(CATALOG, eos_token_id=EOS, pad_token_id=PAD)


def _ids(rows: list[list[int]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.long)


def test_sizes(trie):
    assert trie.num_items == len(trie) == 6
    assert trie.max_length == 3
    # root, 5, 5-6, 5-6-7, 5-8, 9, 9-10, 9-10-11, 9-10-12, 13
    assert trie.num_nodes == 10
    assert not trie.uniform_length  # [5, 6] ends where [5, 6, 7] goes on
    assert ItemTrie([[5, 6], [5, 7], [8, 9]], eos_token_id=EOS, pad_token_id=PAD).uniform_length


def test_allowed_sets(trie):
    assert trie.allowed([]) == [5, 9, 13]
    assert trie.allowed([5]) == [6, 8]
    assert trie.allowed([9, 10]) == [11, 12]
    assert trie.allowed([5, 8]) == [EOS]  # complete leaf: only EOS
    assert trie.allowed([13]) == [EOS]


def test_identifier_that_is_prefix_of_another(trie):
    # [5, 6] is item 0 and a prefix of item 1 = [5, 6, 7]: both EOS and 7 are allowed after it
    assert trie.allowed([5, 6]) == [EOS, 7]
    assert trie.item_of([5, 6]) == 0
    assert trie.item_of([5, 6, 7]) == 1
    assert trie.decode(_ids([[5, 6, EOS, PAD], [5, 6, 7, EOS]])) == [0, 1]


def test_eos_only_after_complete_identifier(trie):
    assert EOS not in trie.allowed([5])
    assert EOS not in trie.allowed([9, 10])
    assert trie.allowed([5, EOS]) == [EOS]  # EOS too early leaves the trie: invalid rows may only emit EOS
    assert trie.walk(_ids([[5, EOS]])).tolist() == [ItemTrie.INVALID]


def test_finished_rows_allow_only_pad(trie):
    assert trie.allowed([13, EOS]) == [PAD]
    assert trie.allowed([13, EOS, PAD, PAD]) == [PAD]
    no_pad = ItemTrie(CATALOG, eos_token_id=EOS)
    assert no_pad.allowed([13, EOS]) == [EOS]


def test_walk_states(trie):
    states = trie.walk(_ids([[5, 6, 7], [5, 6, EOS], [13, EOS, PAD], [9, 9, 9], [9, 10, 63]]))
    assert states[0] >= 0 and states[2] == ItemTrie.FINISHED and states[1] == ItemTrie.FINISHED
    assert states[3] == ItemTrie.INVALID
    assert states[4] == ItemTrie.INVALID  # token beyond every trie token
    assert trie.walk(_ids([[], []])).tolist() == [0, 0]  # nothing generated: root


def test_allowed_mask_matches_python_reference(trie):
    prefixes = [[], [5], [5, 6], [5, 6, 7], [5, 8], [9], [9, 10], [9, 10, 11], [13], [13, EOS], [5, EOS], [7]]
    width = max(map(len, prefixes))
    # one walk per prefix, then the finished/invalid ones together (padding after EOS does not change their state)
    for prefix in prefixes:
        mask = trie.allowed_mask(trie.walk(_ids([prefix])), vocab_size=20)
        assert mask.shape == (1, 20)
        assert mask[0].nonzero().flatten().tolist() == trie.allowed(prefix), prefix
    # all rows at once, same answers
    batch = [p + [PAD] * (width - len(p)) for p in prefixes if EOS in p]
    mask = trie.allowed_mask(trie.walk(_ids(batch)), vocab_size=20)
    assert [row.nonzero().flatten().tolist() for row in mask] == [[PAD], [EOS]]


def test_allowed_mask_random_prefixes_match_reference():
    rng = np.random.default_rng(0)
    catalog = {tuple(rng.integers(2, 12, size=rng.integers(1, 5)).tolist()) for _ in range(200)}
    catalog = [list(c) for c in sorted(catalog)]
    trie = ItemTrie(catalog, eos_token_id=EOS, pad_token_id=PAD)
    prefixes = [[] for _ in range(50)]
    prefixes += [c[: rng.integers(0, len(c) + 1)] for c in catalog]
    prefixes += [c + [EOS] for c in catalog[:20]]
    prefixes += [rng.integers(1, 14, size=3).tolist() for _ in range(50)]
    for length in range(0, 6):
        group = [p for p in prefixes if len(p) == length]
        if not group:
            continue
        mask = trie.allowed_mask(trie.walk(_ids(group)), vocab_size=16)
        for prefix, row in zip(group, mask):
            assert row.nonzero().flatten().tolist() == trie.allowed(prefix), prefix


def test_allowed_mask_drops_tokens_beyond_vocab(trie):
    mask = trie.allowed_mask(trie.walk(_ids([[9, 10]])), vocab_size=12)  # 12 is outside a width-12 mask
    assert mask[0].nonzero().flatten().tolist() == [11]


def test_every_item_round_trips(trie):
    for position, seq in enumerate(CATALOG):
        assert trie.item_of(seq) == position
        assert trie.allowed(seq)[0] == EOS  # EOS is always allowed after a complete identifier
    assert trie.item_of([5]) is None
    assert trie.item_of([9, 10]) is None
    assert trie.item_of([4]) is None
    assert trie.item_of([]) is None


def test_decode(trie):
    rows = [
        [9, 10, 12, EOS],
        [13, EOS, PAD, PAD],
        [13, PAD, PAD, PAD],  # pad also ends the identifier
        [5, EOS, PAD, PAD],  # incomplete
        [5, 7, EOS, PAD],  # not in the catalog
        [5, 6, 7, 7],  # runs past a leaf
        [PAD, PAD, PAD, PAD],
        [5, 8, EOS, 9],  # tokens after EOS are ignored
    ]
    assert trie.decode(_ids(rows)) == [4, 5, 5, None, None, None, None, 2]


def test_2d_array_input_and_to():
    codes = np.array([[3, 4], [3, 5], [6, 4]])
    trie = ItemTrie(codes, eos_token_id=EOS, pad_token_id=PAD)
    assert trie.num_items == 3 and trie.allowed([3]) == [4, 5]
    assert trie.to("cpu") is trie
    assert trie.to(torch.device("cpu")).decode(_ids([[6, 4, EOS]])) == [2]


def test_large_catalog_is_consistent():
    rng = np.random.default_rng(1)
    codes = np.unique(rng.integers(2, 40, size=(5000, 4)), axis=0)
    rng.shuffle(codes)
    trie = ItemTrie(codes.tolist(), eos_token_id=EOS, pad_token_id=PAD)
    with_eos = np.concatenate([codes, np.full((len(codes), 1), EOS)], axis=1)
    assert trie.decode(torch.from_numpy(with_eos)) == list(range(len(codes)))
    assert (trie.walk(torch.from_numpy(with_eos)) == ItemTrie.FINISHED).all()


@pytest.mark.parametrize(
    "sequences, message",
    [
        ([], "empty"),
        ([[5], []], "empty sequence"),
        ([[5, 6], [7], [5, 6]], "positions 0 and 2"),
        ([[5, EOS, 6]], "eos_token_id"),
        ([[5, PAD]], "pad_token_id"),
        ([[5, -3]], "negative"),
    ],
)
def test_errors(sequences, message):
    with pytest.raises(ValueError, match=message):
        ItemTrie(sequences, eos_token_id=EOS, pad_token_id=PAD)


def test_bad_special_tokens():
    with pytest.raises(ValueError, match="eos_token_id"):
        ItemTrie([[5]], eos_token_id=-1)
    with pytest.raises(ValueError, match="eos_token_id"):
        ItemTrie([[5]], eos_token_id=None)


# ---------------------------------------------------------------------- rank_items


def test_rank_items_dedups_drops_invalid_and_sorts(trie):
    # 2 inputs x 4 returned rows; T5-style sequences start with the decoder start token (PAD)
    sequences = _ids(
        [
            [PAD, 5, 8, EOS],  # item 2
            [PAD, 13, EOS, PAD],  # item 5
            [PAD, 5, 8, EOS],  # item 2 again, worse score: dropped
            [PAD, 5, EOS, PAD],  # invalid
            [PAD, 9, 10, 11],  # item 3 (no EOS: cut at max length, still a complete identifier)
            [PAD, 5, 6, EOS],  # item 0
            [PAD, 5, 6, 7],  # item 1 but an empty beam slot score
            [PAD, 7, 7, 7],  # invalid
        ]
    )
    scores = torch.tensor([-0.5, -0.25, -0.75, -0.1, -2.0, -1.0, -1e9, -float("inf")])
    items, item_scores = rank_items(trie, sequences, scores, num_return=4, k=10, prompt_length=1)
    assert items == [[5, 2], [0, 3]]
    assert item_scores == [[-0.25, -0.5], [-1.0, -2.0]]
    items, _ = rank_items(trie, sequences, scores, num_return=4, k=1, prompt_length=1)
    assert items == [[5], [0]]


def test_rank_items_errors(trie):
    seqs = _ids([[5, 8, EOS]] * 4)
    with pytest.raises(ValueError, match="multiple"):
        rank_items(trie, seqs, torch.zeros(4), num_return=3, k=2)
    with pytest.raises(ValueError, match="shape"):
        rank_items(trie, seqs, torch.zeros(3), num_return=2, k=2)
    with pytest.raises(ValueError, match="output_scores"):
        rank_items(trie, seqs, None, num_return=2, k=2)
    with pytest.raises(ValueError, match="positive"):
        rank_items(trie, seqs, torch.zeros(4), num_return=2, k=0)


def _blocked(trie, items) -> set[tuple[int, int]]:
    nodes, tokens = trie.blocked_transitions(items)
    return set(zip(nodes.tolist(), tokens.tolist()))


def test_blocked_transitions_remove_only_banned_items(trie):
    def node(*prefix):
        return int(trie.walk(_ids([list(prefix)]))[0]) if prefix else 0

    assert _blocked(trie, []) == set()
    assert _blocked(trie, [5]) == {(node(), 13)}  # a one-item subtree: its edge from the root
    assert _blocked(trie, [0]) == {(node(5, 6), EOS)}  # [5, 6] is a prefix of item 1: only its EOS goes
    assert _blocked(trie, [0, 1]) == {(node(5), 6), (node(5, 6), 7)}  # the whole 5-6 subtree (and inside it)
    assert (node(), 9) in _blocked(trie, [3, 4])  # 9-10-11 and 9-10-12: the edge into 9 goes
    with pytest.raises(ValueError, match="item positions"):
        trie.blocked_transitions([6])


@pytest.mark.parametrize("seed", range(5))
def test_banned_items_are_never_completed_and_the_rest_stay_reachable(seed):
    """Walk every allowed path of a random trie with a random ban: exactly the unbanned items can be spelled."""
    rng = np.random.default_rng(seed)
    catalog = {tuple(rng.integers(3, 9, size=rng.integers(1, 4)).tolist()) for _ in range(60)}
    catalog = sorted(catalog)
    trie = ItemTrie(catalog, eos_token_id=EOS, pad_token_id=PAD)
    banned = set(rng.choice(len(catalog), size=len(catalog) // 3, replace=False).tolist())
    blocked = _blocked(trie, banned)

    reachable, frontier = set(), [((), 0)]
    while frontier:
        prefix, node = frontier.pop()
        for token in trie.allowed(list(prefix)):
            if (node, token) in blocked:
                continue
            if token == EOS:
                reachable.add(trie.item_of(list(prefix)))
                continue
            child = int(trie.walk(torch.tensor([list(prefix) + [token]]))[0])
            frontier.append((prefix + (token,), child))
    assert reachable == set(range(len(catalog))) - banned
