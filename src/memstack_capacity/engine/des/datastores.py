"""Registers the datastore model (pools, servers, caches, external APIs) with the engine.

Importing this module appends :func:`datastores_extension` to
:data:`memstack_capacity.engine.des.build.EXTENSIONS`; ``engine/build.py`` imports it.
"""

from __future__ import annotations

from memstack_capacity.components.datastores.runtime import Datastores
from memstack_capacity.engine.des import build as _build


def datastores_extension(model, streams) -> None:
    """Serve ``call`` and ``external`` steps and measure the datastores of `model`."""
    Datastores(model, streams)


if datastores_extension not in _build.EXTENSIONS:
    _build.EXTENSIONS.append(datastores_extension)
