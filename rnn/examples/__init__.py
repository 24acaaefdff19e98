"""Runnable examples; the main job is ``python -m rnn.examples.repeat_copy``.

>>> from rnn.examples.repeat_copy.task import RepeatCopyTask
>>> RepeatCopyTask(num_bits=2).observation_size
4
"""
