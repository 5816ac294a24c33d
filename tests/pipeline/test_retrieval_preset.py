"""The retrieval preset is the default main job plus the retrieval stage, with the stage's own
defaults: one model, whichever way the stage is run (preset, pipeline, tools/retrieval_report.py)."""

import dataclasses

import pytest
import yaml

from conftest import REPO_ROOT

from graphrel.errors import GraphrelInputError
from graphrel.pipeline.config import PipelineConfig, check_config
from graphrel.retrieval.config import RetrievalConfig


def load(name: str) -> dict:
    return yaml.safe_load((REPO_ROOT / "configs" / name).read_text(encoding="utf-8"))


def test_the_preset_is_the_default_job_plus_retrieval_with_its_defaults():
    preset, default = load("home_depot_retrieval.yaml"), load("home_depot.yaml")
    retrieval = preset.pop("retrieval")
    assert preset == default
    assert retrieval.pop("enabled") is True
    lists = {k: tuple(v) for k, v in retrieval.items() if isinstance(v, list)}  # YAML lists, tuple fields
    assert RetrievalConfig(**{**retrieval, **lists}) == RetrievalConfig()
    assert PipelineConfig().retrieval.enabled is False  # the default job stays about 15 minutes


STUDIES = {"ablation": True, "index_comparison": True, "blend_and_match": True, "dual_pooling_steps": 400}


def test_the_retrieval_preset_builds_what_is_served_and_the_study_preset_adds_the_studies():
    preset, study = load("home_depot_retrieval.yaml"), load("home_depot_retrieval_study.yaml")
    served, studied = preset.pop("retrieval"), study.pop("retrieval")
    assert preset == study  # the same main job
    assert {key: served[key] for key in STUDIES} == {"ablation": False, "index_comparison": False,
                                                      "blend_and_match": False, "dual_pooling_steps": 0}
    assert {key: studied.pop(key) for key in STUDIES} == STUDIES
    assert {k: v for k, v in served.items() if k not in STUDIES} == studied
    assert served["hybrid"] is True and served["symmetric_student"] is True


def test_a_bad_retrieval_option_stops_the_job_before_any_work():
    config = PipelineConfig(retrieval=dataclasses.replace(RetrievalConfig(), enabled=True, rerank_depth=0))
    with pytest.raises(GraphrelInputError, match="retrieval.rerank_depth"):
        check_config(config)


def test_the_knn_evaluation_needs_the_retrieval_stage_and_checks_its_options():
    from graphrel.retrieval.knn.config import KnnConfig

    lone = PipelineConfig(knn=dataclasses.replace(KnnConfig(), enabled=True))
    with pytest.raises(GraphrelInputError, match="knn.enabled"):
        check_config(lone)
    bad = PipelineConfig(retrieval=dataclasses.replace(RetrievalConfig(), enabled=True),
                         knn=dataclasses.replace(KnnConfig(), enabled=True, budgets=(0,)))
    with pytest.raises(GraphrelInputError, match="knn.budgets"):
        check_config(bad)
    assert PipelineConfig().knn.enabled is False
