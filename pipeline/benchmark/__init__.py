"""``maskstream bench-pipeline``: how many frames per second the actor graph moves, against decoding alone.

- :mod:`~pipeline.benchmark.videos`: the H.264 files it runs on (generated scenes, cached);
- :mod:`~pipeline.benchmark.decode`: the host's limit, the same files decoded by one process each, concurrently;
- :mod:`~pipeline.benchmark.report`: settings, results, the table, JSON and chart.

The graph itself is run by ``actors.bench`` (the real actor graph, the model replaced by
:mod:`pipeline.engine.fixed`).
"""
