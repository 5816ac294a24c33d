"""Scoring pairs with trained models: texts in, scores out, in input order.

- :mod:`~graphrel.scoring.teacher_labelling`: the cross-encoder teacher's logits of many
  pairs (length-sorted batches, resumable chunks), loading and int8 quantisation.
- :mod:`~graphrel.scoring.load`: a student directory's ``student.json`` and
  :func:`~graphrel.scoring.load.load_scorer`, which loads any student for scoring.
- :mod:`~graphrel.scoring.korder_scorer`: the k-order graph student (and BERM-O) scorer.
- :mod:`~graphrel.scoring.streaming`: ``graphrel score``, chunked, crash-safe and resumable;
  :mod:`~graphrel.scoring.score_parts` holds its parts folder (manifest, shards, merge).
- :mod:`~graphrel.scoring.prediction_writer`: per-rank shards of ``graphrel predict``, merged.
- :mod:`~graphrel.scoring.paused_gc`: the garbage-collector pause every scoring loop runs in.

Scoring reads models, nn and data; it never imports the pipeline or the command line.
"""
