"""A task whose model calls go through Inspect's local cache (``generate(cache=True)``).

Run twice with the same ``INSPECT_CACHE_DIR``: the second run answers every call from the cache,
which is what ``inspect.model.cache_hits`` counts (tests/test_metrics.py).
"""

from __future__ import annotations

from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.scorer import includes
from inspect_ai.solver import generate


@task
def cached_arithmetic(samples: int = 3) -> Task:
    dataset = [
        Sample(id=f"c{i}", input=f"What is {i} + {i}?", target=str(2 * i)) for i in range(1, samples + 1)
    ]
    return Task(dataset=dataset, solver=generate(cache=True), scorer=includes())
