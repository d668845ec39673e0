"""The update: Lightning training on a screen with the strategy callbacks, and what it needs
(hardware checks, the memory pre-flight, resumable checkpoints, replay buffers, epoch selection).

:func:`genocl_plugin.training.update.run_update` runs the stages in order; the strategies are
Lightning callbacks in :mod:`genocl_plugin.strategies`.
"""
