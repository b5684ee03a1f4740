"""The Python face: what notebooks, scripts and the CLI call.

``simulation`` (``simulate``), ``batch`` (``replicate``, ``sweep``, ``compare``),
``capacity`` (the most users that meet the targets: it drives simulations, so it sits
here), ``calibrate`` (service times from a recorded test's files), ``backtest`` (the recording
replayed through a scenario and compared), ``progress`` (progress displays). It may import every layer to its left; nothing
but the CLI imports it.
"""
