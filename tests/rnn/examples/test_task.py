"""The repeat-copy data generator (rnn.examples.repeat_copy.task)."""

import numpy as np
import pytest

from rnn.examples.repeat_copy.task import EVAL, TRAIN, RepeatCopyTask


def test_batch_layout_matches_the_documented_one():
    task = RepeatCopyTask(
        num_bits=3, batch_size=6, min_length=1, max_length=4, min_repeats=1, max_repeats=3
    )
    batch = task.batch(seed=5, stream=TRAIN, index=2)
    obs, tgt, mask = batch
    assert obs.shape[1:] == (6, 5) and tgt.shape[1:] == (6, 4) and mask.shape[1] == 6
    assert obs.dtype == tgt.dtype == mask.dtype == np.float32
    lengths = []
    for b in range(6):
        # Recover L and n from the observation channels, then check everything else.
        assert obs[0, b, 3] == 1.0 and obs[0, b, :3].sum() == 0.0
        repeat_step = int(np.nonzero(obs[:, b, 4])[0][0])
        length = repeat_step - 1
        n = int(round(obs[repeat_step, b, 4] * 3))
        assert 1 <= length <= 4 and 1 <= n <= 3
        pattern = obs[1 : length + 1, b, :3]
        start = length + 2
        np.testing.assert_array_equal(
            tgt[start : start + n * length, b, :3], np.tile(pattern, [n, 1])
        )
        assert tgt[start + n * length, b, 3] == 1.0 and tgt[:, b, 3].sum() == 1.0
        expected_mask = np.zeros(obs.shape[0])
        expected_mask[start : start + n * length + 1] = 1.0
        np.testing.assert_array_equal(mask[:, b], expected_mask)
        assert obs[start:, b].sum() == 0.0  # no input while answering
        lengths.append(length * (n + 1) + 3)
    assert obs.shape[0] == max(lengths) <= task.max_time


def test_batches_are_a_function_of_seed_stream_and_index():
    task = RepeatCopyTask(batch_size=8)
    same = [task.batch(3, TRAIN, 7) for _ in range(2)]
    for a, b in zip(*same):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(task.batch(3, TRAIN, 8).observations[:4], same[0].observations[:4])
    assert not np.array_equal(task.batch(3, EVAL, 7).observations[:4], same[0].observations[:4])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_bits=0), "num_bits must be a positive int"),
        (dict(min_length=4, max_length=2), r"min_length \(4\) must be <= max_length \(2\)"),
        (dict(min_repeats=3, max_repeats=1), r"min_repeats \(3\) must be <= max_repeats"),
    ],
)
def test_task_rejects_bad_sizes(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RepeatCopyTask(**kwargs)
