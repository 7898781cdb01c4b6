import numpy as np
import pytest

from hf_finetune_curve import ConfigError, make_splits, parse_sizes, size_label


@pytest.mark.parametrize("size,label", [(0, "f0"), (500, "f500"), (1500, "f1.5k"), (10_000, "f10k"),
                                        (2_000_000, "f2m"), (120_000, "f120k"), (12_345, "f12.345k")])
def test_labels(size, label):
    assert size_label(size) == label


def test_parse_sizes_counts_fractions_all():
    assert parse_sizes("0, 10k,1.5k,0.25,all", pool_size=100_000) == [0, 1500, 10_000, 25_000, 100_000]
    assert parse_sizes("2m", pool_size=3_000_000) == [2_000_000]
    assert parse_sizes("all,all,0", pool_size=7) == [0, 7]


@pytest.mark.parametrize("spec,pattern", [("abc", "cannot parse"), ("5k", "pool holds only 1000"),
                                          ("", "empty"), ("1.5", "fraction"), ("1.2345k", "whole number")])
def test_parse_sizes_errors(spec, pattern):
    with pytest.raises(ConfigError, match=pattern):
        parse_sizes(spec, pool_size=1000)


def test_subsets_are_nested_and_exclude_the_test_split():
    splits = make_splits(num_rows=500, test_fraction=0.2, seed=3)
    test = set(splits.test_indices.tolist())
    assert len(test) == 100
    assert test.isdisjoint(splits.pool_order.tolist())
    assert sorted(splits.pool_order.tolist()) == sorted(splits.train_indices.tolist())
    small, large = splits.pool_order[:50], splits.pool_order[:200]  # subset n: the first n of the pool
    assert set(small.tolist()) <= set(large.tolist())
    assert np.array_equal(large[:50], small)


def test_split_is_fixed_by_seed_and_include_test_variant():
    a = make_splits(400, 0.25, seed=1)
    b = make_splits(400, 0.25, seed=1)
    c = make_splits(400, 0.25, seed=2)
    assert np.array_equal(a.test_indices, b.test_indices) and np.array_equal(a.pool_order, b.pool_order)
    assert not np.array_equal(a.test_indices, c.test_indices)
    transductive = make_splits(400, 0.25, seed=1, include_test_in_finetune=True)
    assert np.array_equal(transductive.test_indices, a.test_indices)
    assert len(transductive.pool_order) == 400


def test_splits_roundtrip(tmp_path):
    splits = make_splits(100, 0.2, seed=0)
    splits.save(tmp_path / "s.npz")
    loaded = type(splits).load(tmp_path / "s.npz")
    assert np.array_equal(loaded.pool_order, splits.pool_order)


def test_probe_rows_sample_the_probe_not_the_pool():
    full = make_splits(1000, 0.2, seed=3)
    sampled = make_splits(1000, 0.2, seed=3, probe_rows=100)
    assert len(sampled.test_indices) == 20 and len(sampled.train_indices) == 80  # the test share is kept
    assert set(sampled.test_indices) <= set(full.test_indices)
    assert set(sampled.train_indices) <= set(full.train_indices)
    np.testing.assert_array_equal(sampled.pool_order, full.pool_order)  # finetuning still sees every pool row
    np.testing.assert_array_equal(sampled.probe_rows, np.union1d(sampled.train_indices, sampled.test_indices))
    again = make_splits(1000, 0.2, seed=3, probe_rows=100, order_seed=9)  # another replicate: same probe rows
    np.testing.assert_array_equal(again.probe_rows, sampled.probe_rows)
    # At or above the corpus size nothing is sampled.
    np.testing.assert_array_equal(make_splits(1000, 0.2, seed=3, probe_rows=1000).probe_rows, np.arange(1000))
