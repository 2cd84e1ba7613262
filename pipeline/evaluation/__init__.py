"""Accuracy evaluation (``maskstream eval``): the model alone, the whole pipeline, and the tracker alone.

- :mod:`pipeline.evaluation.metrics`: COCO mask/box AP (pycocotools) and MOTA/IDF1/HOTA (``trackers.eval``).
- :mod:`pipeline.evaluation.model_ap`: the model on held-out generated frames (scene seeds >= 10**9).
- :mod:`pipeline.evaluation.pipeline_eval`: ``maskstream run``'s JSON Lines output on held-out videos.
- :mod:`pipeline.evaluation.ood_scenes`, :mod:`ood_match`, :mod:`ood_eval`, :mod:`ood_pictures`, :mod:`ood_report`:
  the model on frames of an independent renderer (out of distribution): AP, precision/recall, worst frames.
- :mod:`pipeline.evaluation.tracker_eval`: our ByteTracker vs roboflow's on noisy ground-truth boxes, of the
  generated shapes and of simulated walkers (:mod:`pipeline.evaluation.walkers`).
- :mod:`pipeline.evaluation.report`: targets, JSON, PNG chart, rich tables; :mod:`pipeline.evaluation.cli`.

Submodules import torch, pycocotools or Ray only when used.
"""
