"""The main job (``graphrel pipeline``): split -> teacher fit -> transfer set -> teacher
scoring -> graphs -> students (k=0 and k) -> evaluation on unseen test queries (protocols
``new_query`` and ``new_pairs``) -> report.

Each stage writes its output atomically into the run directory and is skipped when that
output exists *and* was built from the same config values and inputs; a changed value
re-runs the stage and every stage after it that reads its outputs. An interrupted pipeline
resumes where it stopped.

- :mod:`~graphrel.pipeline.config`: the config dataclasses and :func:`check_config`.
- :mod:`~graphrel.pipeline.job`: :class:`Pipeline`, the wiring of the stages.
- :mod:`~graphrel.pipeline.stages`: what each stage reads, writes and is keyed on;
  :mod:`~graphrel.pipeline.records`: ``stages.json``, the keys of finished stages.
- the stage units, one module each: ``split_stage``, ``teacher_stages``, ``stacking_stage``,
  ``graph_stage``, ``student_stages`` (their Lightning trainer: ``trainer``) and
  :mod:`~graphrel.pipeline.evaluation` (the protocols, quality and timing).
- :mod:`~graphrel.pipeline.report`: ``report.md`` and the plot.

The pipeline may import every other part of graphrel but the command line.
"""
