"""Runnable examples; the main job is ``python -m rnn.examples.repeat_copy``.

>>> from rnn.examples import repeat_copy_task
>>> repeat_copy_task.RepeatCopyTask(num_bits=2).observation_size
4
"""
