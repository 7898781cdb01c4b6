"""The recipe does not depend on the process count: the batch is global, split evenly over the processes."""

import numpy as np
import pytest

from hf_finetune_curve import FinetuneConfig
from hf_finetune_curve.config import check_supported_launch
from hf_finetune_curve.errors import ConfigError, ProcessCountError
from hf_finetune_curve.train.recipe import plan_curve
from hf_finetune_curve.train.trainer import training_arguments

TEXTS = [list(range(5, 5 + 20 + (i % 7))) for i in range(120)]


def test_plans_are_the_same_on_any_process_count():
    config = FinetuneConfig(batch_size=8, epochs=2)
    one = plan_curve(TEXTS, [40, 120], config, seed=3, chunk_length=16, world_size=1)
    for processes in (2, 4, 8):
        many = plan_curve(TEXTS, [40, 120], config, seed=3, chunk_length=16, world_size=processes)
        assert many.chunks_per_step == one.chunks_per_step == 8
        assert np.array_equal(many.main_stream, one.main_stream)
        assert {n: r.steps for n, r in many.recipes.items()} == {n: r.steps for n, r in one.recipes.items()}


def test_each_process_takes_its_share_of_the_global_batch(monkeypatch, tmp_path):
    import hf_finetune_curve.train.trainer as trainer

    # Two processes as world_size() reports them under torchrun (a real process group needs a launcher).
    monkeypatch.setattr(trainer, "world_size", lambda: 2)
    args = training_arguments(FinetuneConfig(batch_size=16), output_dir=tmp_path, seed=0, max_steps=2, device="cpu",
                              learning_rate=1e-4, show_progress=False)
    assert args.per_device_train_batch_size == 8


def test_a_batch_that_does_not_split_is_refused_before_any_work(monkeypatch, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(ProcessCountError, match=r"finetune.batch_size is the global batch, 16, which does not split "
                                                r"evenly over 3 processes: use a batch that 3 divides \(15 or 18\)"):
        check_supported_launch(FinetuneConfig(batch_size=16))
    assert issubclass(ProcessCountError, ConfigError)  # the CLI reports it like every bad setting
    with pytest.raises(ProcessCountError):
        plan_curve(TEXTS, [40], FinetuneConfig(batch_size=16), seed=0, chunk_length=16, world_size=3)
    check_supported_launch(FinetuneConfig(batch_size=18))  # 3 divides 18
