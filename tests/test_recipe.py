"""The recipe module: packing into flat arrays, the learning-rate rule, and its docstring examples."""

import doctest

import numpy as np

from hf_finetune_curve.train import recipe
from hf_finetune_curve.train.recipe import TokenizedTexts, pack_segments


def _reference_pack(encoded, sizes, chunk_length):
    """The obvious list version: concatenate each segment's tokens, cut every chunk_length."""
    chunks, last, previous = [], [], 0
    for size in sizes:
        stream, owner = [], []
        for index in range(previous, size):
            stream += list(encoded[index])
            owner += [index] * len(encoded[index])
        for start in range(0, len(stream), chunk_length):
            chunks.append(stream[start:start + chunk_length])
            last.append(owner[min(start + chunk_length, len(stream)) - 1])
        previous = size
    return chunks, last


def test_flat_packing_equals_the_list_version():
    rng = np.random.default_rng(0)
    encoded = [rng.integers(5, 1000, size=int(rng.integers(2, 90))).tolist() for _ in range(300)]
    flat = TokenizedTexts.from_lists(encoded)
    assert flat.ids.dtype == np.int32 and [flat[i].tolist() for i in range(5)] == encoded[:5]
    halves = TokenizedTexts.concatenate([TokenizedTexts.from_lists(encoded[:120]),
                                         TokenizedTexts.from_lists(encoded[120:])])
    np.testing.assert_array_equal(halves.ids, flat.ids)
    np.testing.assert_array_equal(halves.offsets, flat.offsets)
    for sizes in ([300], [7, 50, 300], [1, 2, 3, 299]):
        chunks, last_text, ends = pack_segments(flat, sizes, 32)
        expected, expected_last = _reference_pack(encoded, sizes, 32)
        assert chunks.to_lists() == expected
        assert last_text.tolist() == expected_last
        # No chunk mixes two segments; each segment's chunk count is where the next one starts.
        bounds = [0] + sizes
        for k, end in enumerate(ends):
            first = ends[k - 1] if k else 0
            assert all(bounds[k] <= t < bounds[k + 1] for t in last_text[first:end])


def test_docstring_examples_run():
    results = doctest.testmod(recipe, optionflags=doctest.ELLIPSIS)
    assert results.attempted > 0 and results.failed == 0
