"""The Python face: what notebooks, scripts and the CLI call.

``simulation`` (``simulate``), ``batch`` (``replicate``, ``sweep``, ``compare``),
``capacity`` (the most users that meet the targets: it drives simulations, so it sits
here), ``progress`` (progress displays). It may import every layer to its left; nothing
but the CLI imports it.
"""
