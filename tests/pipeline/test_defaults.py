"""One model, however it is trained: the default preset (configs/home_depot.yaml), the
pipeline's config defaults, the classes' own defaults and the LightningCLI configs
(``graphrel fit --config configs/korder.yaml`` ...) all train the same students."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import yaml

from conftest import REPO_ROOT

from graphrel.models.bert2dnn import Bert2DnnStudent
from graphrel.models.bert2dnn_data import Bert2DnnDataModule
from graphrel.models.korder import KOrderStudent
from graphrel.models.korder_data import StudentDataModule
from graphrel.pipeline.config import PipelineConfig
from graphrel.pipeline.student_stages import fit_bert2dnn_student, fit_student


def load_yaml(name: str) -> dict:
    return yaml.safe_load((REPO_ROOT / "configs" / name).read_text(encoding="utf-8"))


def defaults(cls) -> dict:
    """The keyword defaults of ``cls.__init__``."""
    return {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items()
            if p.default is not inspect.Parameter.empty}


def effective(cls, kwargs: dict) -> dict:
    """Every argument ``cls`` is built with from ``kwargs`` (defaults filled in), lists as tuples."""
    bound = inspect.signature(cls.__init__).bind_partial(**kwargs)
    bound.apply_defaults()
    return {k: tuple(v) if isinstance(v, list) else v for k, v in bound.arguments.items() if k != "self"}


class _Stop(Exception):
    pass


def _recorder(calls: dict, name: str, stop: bool = False):
    class Recorder:
        def __init__(self, **kwargs):
            calls[name] = kwargs
            if stop:
                raise _Stop

        def set_pairs(self, pairs):
            pass

        def setup(self, stage=None):
            pass

    return Recorder


@pytest.fixture(scope="module")
def pipeline_calls(tmp_path_factory) -> dict:
    """The keyword arguments the pipeline, with its default config, builds the k-order
    student, BERT2DNN student and their datamodules with (captured, nothing trained)."""
    import graphrel.models.bert2dnn_training as bert2dnn_training
    import graphrel.models.korder as korder
    import graphrel.models.korder_data as korder_data

    calls: dict = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(korder, "KOrderStudent", _recorder(calls, "korder"))
        patch.setattr(korder_data, "StudentDataModule", _recorder(calls, "korder_data", stop=True))
        patch.setattr(bert2dnn_training, "Bert2DnnDataModule", _recorder(calls, "bert2dnn_data"))
        patch.setattr(bert2dnn_training, "Bert2DnnStudent", _recorder(calls, "bert2dnn", stop=True))
        config = PipelineConfig()
        run_dir = tmp_path_factory.mktemp("run")
        (run_dir / "label_scale.json").write_text('{"label_min": 1, "label_max": 3, "source": "test"}')
        with pytest.raises(_Stop):
            fit_student(config, run_dir, "student_korder", config.student.order, None, None, progress=False)
        with pytest.raises(_Stop):
            fit_bert2dnn_student(config, run_dir, None, progress=False)
    return calls


def test_default_preset_is_the_pipeline_config_default():
    """configs/home_depot.yaml sets every key to the dataclass default (so `graphrel pipeline`
    without a config trains what the preset trains)."""
    def differences(values: dict, config, where: str):
        for key, value in values.items():
            default = getattr(config, key)
            if dataclasses.is_dataclass(default):
                yield from differences(value, default, f"{where}{key}.")
            elif (tuple(value) if isinstance(value, list) else value) != default:
                yield f"{where}{key}: preset {value!r}, default {default!r}"

    assert list(differences(load_yaml("home_depot.yaml"), PipelineConfig(), "")) == []


def test_class_defaults_are_the_pipelines_students(pipeline_calls):
    for cls, name in ((KOrderStudent, "korder"), (StudentDataModule, "korder_data"),
                      (Bert2DnnStudent, "bert2dnn"), (Bert2DnnDataModule, "bert2dnn_data")):
        pipeline = effective(cls, pipeline_calls[name])
        pipeline.pop("run_dir", None)  # the run's own directory
        own = effective(cls, {})
        own.pop("run_dir", None)
        # similar_queries: the classes keep 0, so a checkpoint saved before the option existed
        # loads as it was trained; the pipeline and the LightningCLI configs set 4
        assert (own.pop("similar_queries", 0), pipeline.pop("similar_queries", 0)) in ((0, 0), (0, 4)), cls.__name__
        assert own == pipeline, cls.__name__


@pytest.mark.parametrize("config", ["korder.yaml", "korder_ddp.yaml", "bert2dnn.yaml"])
def test_lightning_cli_configs_train_the_pipelines_students(config, pipeline_calls):
    content = load_yaml(config)
    kind = "korder" if config.startswith("korder") else "bert2dnn"
    for section, name in (("model", kind), ("data", f"{kind}_data")):
        cls = {"korder": KOrderStudent, "korder_data": StudentDataModule, "bert2dnn": Bert2DnnStudent,
               "bert2dnn_data": Bert2DnnDataModule}[name]
        assert content[section]["class_path"] == f"{cls.__module__}.{cls.__name__}"
        from_cli = effective(cls, content[section]["init_args"])
        pipeline = effective(cls, pipeline_calls[name])
        for values in (from_cli, pipeline):
            values.pop("run_dir", None)
            values.pop("predict_split", None)  # prediction only
        assert from_cli == pipeline, (config, section)
    config_defaults = PipelineConfig()
    epochs = config_defaults.student.epochs if kind == "korder" else config_defaults.bert2dnn.epochs
    trainer = content["trainer"]
    assert trainer["max_epochs"] == epochs and trainer["deterministic"] is True
    assert trainer.get("num_sanity_val_steps") == 0  # the pipeline's trainer: no sanity pass (it draws seeds)
    assert content["seed_everything"] == config_defaults.seed
    (checkpoint,) = [c for c in trainer["callbacks"] if c["class_path"].endswith("ModelCheckpoint")]
    assert checkpoint["init_args"]["monitor"] == "val_auc" and checkpoint["init_args"]["mode"] == "max"


def test_class_defaults_match_the_documented_ones():
    """Spot checks of the values the pipeline measured best (README / the presets)."""
    assert defaults(KOrderStudent)["neighbourhood_statistics"] is True
    teacher = PipelineConfig().teacher  # one random catalogue negative per query, none mined (validation)
    assert (teacher.random_negatives, teacher.mined_negatives) == (1, 0)
    assert defaults(StudentDataModule)["cap"] == PipelineConfig().student.cap == 4
    bert = defaults(Bert2DnnStudent)
    assert (bert["init"], bert["match_features"], bert["label_weight"]) == ("sentence", True, 1.0)
