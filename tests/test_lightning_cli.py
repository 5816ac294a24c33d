"""``graphrel fit|validate|test|predict``: Lightning's CLI on graphrel models, with
``configs/korder.yaml`` shrunk to a tiny random student on a tiny synthetic run (seconds, no
real data, no download).

- ``--ckpt_path last`` resumes an earlier fit from its last checkpoint, also with the
  ``config.yaml`` LightningCLI saved in the fit's log directory (each fit logs to a new
  ``lightning_logs/version_N``);
- several ``--config`` files merge as jsonargparse documents: later files and flags override
  earlier ones key by key, keys they leave out keep their earlier value.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import Callback

from graphrel.cli import main
from helpers import one_thread  # noqa: F401 (autouse fixture: tiny models on one thread)

REPO_ROOT = Path(__file__).resolve().parent.parent
# Lightning's pytree FutureWarning, which graphrel hides but not with --verbose (used here to read its log)
pytestmark = pytest.mark.filterwarnings(r"ignore:`isinstance\(treespec, LeafSpec\)` is deprecated:FutureWarning")
KORDER = REPO_ROOT / "configs" / "korder.yaml"
WORDS = ["drill", "bit", "hammer", "nail", "paint", "brush", "pipe", "valve", "door", "hinge", "light", "bulb"]


class Recorder(Callback):
    """Where each ``trainer.fit`` of this process started: its step, epoch, the checkpoint it
    restored, the weights it started from, and the epochs it trained."""

    runs: list[dict] = []

    def on_train_start(self, trainer, pl_module) -> None:
        Recorder.runs.append({"global_step": trainer.global_step, "epoch": trainer.current_epoch,
                              "ckpt_path": trainer.ckpt_path, "epochs_trained": [],
                              "weights": {k: v.detach().clone() for k, v in pl_module.state_dict().items()}})

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        Recorder.runs[-1]["epochs_trained"].append(trainer.current_epoch)


RECORDER = f"{__name__}.Recorder"


# -- a tiny run and a tiny configs/korder.yaml -----------------------------------------------
def synthetic_pairs(seed: int = 0, queries: int = 30) -> pd.DataFrame:
    """Pairs like a pipeline run's (train / val / test queries), a relevant product sharing
    the query's first word; products shared between queries make a graph."""
    rng = np.random.default_rng(seed)
    rows = []
    for q in range(queries):
        words = list(rng.choice(WORDS, 2, replace=False))
        split = "train" if q < queries * 0.6 else ("val" if q < queries * 0.8 else "test")
        for p in range(4):
            relevant = p < 2
            product = f"P{rng.integers(50)}"
            rows.append((f"q{q}", f"{' '.join(words)} {q}", product, float(relevant), split))
    frame = pd.DataFrame(rows, columns=["query_id", "query", "product_id", "label", "split"])
    frame = frame.drop_duplicates(["query_id", "product_id"]).reset_index(drop=True)
    frame["product_text"] = frame["product_id"].map(
        {p: " ".join(rng.choice(WORDS, 4)) + f" {p}" for p in frame["product_id"].unique()})
    frame["teacher_logit"] = np.where(frame["label"] > 0, 2.0, -2.0) + rng.normal(0, 0.3, len(frame))
    frame["teacher_score"] = 1 / (1 + np.exp(-frame["teacher_logit"]))
    return frame


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A run directory as ``graphrel pipeline`` leaves it for the students: pairs, teacher
    scores, graph."""
    from graphrel.data.graph import build_graph
    from graphrel.run import GRAPH, PAIRS, TEACHER_SCORES, save_graph

    run = tmp_path_factory.mktemp("run")
    pairs = synthetic_pairs()
    assert {"train", "val", "test"} <= set(pairs["split"]) and pairs.loc[pairs.split == "val", "label"].nunique() == 2
    pairs.drop(columns=["teacher_logit", "teacher_score"]).to_parquet(run / PAIRS, index=False)
    pairs[["query_id", "product_id", "teacher_logit", "teacher_score"]].to_parquet(run / TEACHER_SCORES, index=False)
    save_graph(build_graph(pairs), run / GRAPH)
    return run


def tiny_korder(run_dir: Path) -> dict:
    """``configs/korder.yaml`` (its trainer and checkpoint callback as shipped) with a tiny
    random student, 1 epoch, and :class:`Recorder`."""
    config = yaml.safe_load(KORDER.read_text())
    config["trainer"].update(max_epochs=1, enable_progress_bar=False, enable_model_summary=False)
    config["trainer"]["callbacks"].append({"class_path": RECORDER})
    config["model"]["init_args"].update(hidden=8, text_hidden=16, text_dim=16, learning_rate=1e-2,
                                        backbone_config={"vocab_size": 30522, "hidden_size": 32})
    config["data"]["init_args"].update(run_dir=str(run_dir), batch_size=16)
    return config


def write_yaml(path: Path, content: dict) -> Path:
    path.write_text(yaml.safe_dump(content))
    return path


@contextlib.contextmanager
def lightning_log():
    """Lightning's INFO lines (``graphrel ... --verbose`` lets them through) as a list of str."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    logger, handler = logging.getLogger("lightning.pytorch"), Keep(logging.INFO)
    logger.addHandler(handler)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)


def graphrel(*argv: str) -> None:
    assert main(list(argv)) == 0


def checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- --ckpt_path last ------------------------------------------------------------------------
def test_shipped_student_configs_save_a_last_checkpoint():
    """``--ckpt_path last`` needs a ModelCheckpoint with ``save_last``, which a full (not
    weights-only) checkpoint must write: it resumes optimiser and loop state too."""
    for name in ("korder.yaml", "korder_ddp.yaml", "teacher.yaml"):
        callbacks = yaml.safe_load((REPO_ROOT / "configs" / name).read_text())["trainer"]["callbacks"]
        saving = [c["init_args"] for c in callbacks if c["class_path"].endswith("ModelCheckpoint")
                  and c["init_args"].get("save_last")]
        assert saving and not any(c.get("save_weights_only") for c in saving), name


def test_fit_resumes_from_the_saved_config_with_ckpt_path_last(run_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Recorder.runs.clear()
    config = write_yaml(tmp_path / "tiny_korder.yaml", tiny_korder(run_dir))
    # --ckpt_path last before any fit: nothing to resume yet, a fresh start (set and forget)
    graphrel("fit", "--config", str(config), "--ckpt_path", "last")
    first = Recorder.runs[-1]
    assert (first["global_step"], first["epoch"], first["ckpt_path"], first["epochs_trained"]) == (0, 0, None, [0])
    logs = tmp_path / "lightning_logs"
    saved_config, last = logs / "version_0" / "config.yaml", logs / "version_0" / "checkpoints" / "last.ckpt"
    assert saved_config.is_file() and last.is_file()
    saved = checkpoint(last)
    steps = saved["global_step"]
    assert saved["epoch"] == 0 and steps > 0

    capsys.readouterr()
    with lightning_log() as lines:
        graphrel("fit", "--verbose", "--config", str(saved_config), "--trainer.max_epochs", "2", "--ckpt_path", "last")
    resumed = Recorder.runs[-1]
    # it started where the checkpoint ends: step, epoch, weights; trained epoch 1 only
    assert (resumed["global_step"], resumed["epoch"], resumed["epochs_trained"]) == (steps, 1, [1])
    assert resumed["ckpt_path"] and Path(resumed["ckpt_path"]).resolve() == last.resolve()
    assert same_weights(resumed["weights"], saved["state_dict"])
    assert any(line.startswith("Restoring states from the checkpoint path at") and str(last.resolve()) in line
               for line in lines), lines
    assert str(last.resolve()) in capsys.readouterr().err  # graphrel names the checkpoint it resumes
    # the resumed fit logs to a new version; its last checkpoint is what continuing gives
    final = checkpoint(logs / "version_1" / "checkpoints" / "last.ckpt")
    assert (final["epoch"], final["global_step"]) == (1, 2 * steps)
    metrics = pd.read_csv(logs / "version_1" / "metrics.csv")
    assert metrics.dropna(subset=["val_auc"])["epoch"].tolist() == [1]  # validated once, after epoch 1
    # the same hyper-parameters: the saved config's, in the run and in its checkpoint
    before, after = yaml.safe_load(saved_config.read_text()), yaml.safe_load((logs / "version_1" / "config.yaml").read_text())
    assert after["model"] == before["model"] and after["data"] == before["data"]
    assert after["seed_everything"] == before["seed_everything"]
    assert {k for k in before["trainer"] if before["trainer"][k] != after["trainer"][k]} == {"max_epochs"}
    for key, section in (("hyper_parameters", "model"), ("datamodule_hyper_parameters", "data")):
        values = {k: v for k, v in final[key].items() if not k.startswith("_")}  # but _class_path, _instantiator
        assert values == before[section]["init_args"] and final[key]["_class_path"] == before[section]["class_path"]


def test_ckpt_path_last_takes_the_version_of_the_given_config(run_dir, tmp_path, monkeypatch):
    """Two fits in one ``lightning_logs``: resuming with version_0's saved config restores
    version_0's last checkpoint, not the newer one of version_1 (another fit)."""
    monkeypatch.chdir(tmp_path)
    Recorder.runs.clear()
    config = write_yaml(tmp_path / "tiny_korder.yaml", tiny_korder(run_dir))
    graphrel("fit", "--config", str(config))
    graphrel("fit", "--config", str(config), "--model.init_args.learning_rate", "0.003")
    logs = tmp_path / "lightning_logs"
    own, other = (logs / f"version_{v}" / "checkpoints" / "last.ckpt" for v in (0, 1))
    assert own.stat().st_mtime <= other.stat().st_mtime
    # validate / test / predict look for it the same way
    with lightning_log() as lines:
        graphrel("validate", "--verbose", "--config", str(logs / "version_0" / "config.yaml"), "--ckpt_path", "last")
    assert any(line.startswith("Loaded model weights from the checkpoint at") and str(own.resolve()) in line
               for line in lines), lines
    graphrel("fit", "--config", str(logs / "version_0" / "config.yaml"), "--trainer.max_epochs", "2",
             "--ckpt_path", "last")
    assert Recorder.runs[-1]["ckpt_path"] and Path(Recorder.runs[-1]["ckpt_path"]).resolve() == own.resolve()
    assert same_weights(Recorder.runs[-1]["weights"], checkpoint(own)["state_dict"])
    # a config that is no log directory's: the newest last checkpoint (Lightning's rule)
    newest = max(logs.glob("version_*/checkpoints/last.ckpt"), key=lambda path: path.stat().st_mtime)
    assert newest.resolve() not in (own.resolve(), other.resolve())  # the resumed fit's
    graphrel("fit", "--config", str(config), "--trainer.max_epochs", "3", "--ckpt_path", "last")
    assert Path(Recorder.runs[-1]["ckpt_path"]).resolve() == newest.resolve()
    assert Recorder.runs[-1]["epochs_trained"] == [2]


def test_ckpt_path_last_without_a_last_checkpoint_callback_is_a_user_error(run_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    content = tiny_korder(run_dir)
    content["trainer"]["callbacks"][0]["init_args"]["save_last"] = False
    config = write_yaml(tmp_path / "no_last.yaml", content)
    assert main(["fit", "--config", str(config), "--ckpt_path", "last"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("graphrel: error: --ckpt_path last") and "save_last: true" in err[0], err
    assert not (tmp_path / "lightning_logs").exists()  # nothing trained


# -- several --config files --------------------------------------------------------------------
def printed_config(capsys, *argv: str) -> dict:
    """``graphrel fit ARGV --print_config``: the effective config (printed YAML, exit 0)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main(["fit", *argv, "--print_config"])
    assert stop.value.code in (0, None)
    return yaml.safe_load(capsys.readouterr().out)


@pytest.fixture
def two_configs(run_dir, tmp_path) -> tuple[str, str]:
    """a.yaml: the whole tiny korder config, max_epochs 1, learning rate 0.01, order 2;
    b.yaml: only max_epochs 2, the model's learning rate and batch size of the data."""
    a = write_yaml(tmp_path / "a.yaml", tiny_korder(run_dir))
    b = write_yaml(tmp_path / "b.yaml", {"trainer": {"max_epochs": 2},
                                         "model": {"init_args": {"learning_rate": 0.005}},
                                         "data": {"init_args": {"batch_size": 8}}})
    return str(a), str(b)


def test_a_later_config_overrides_an_earlier_one_key_by_key(capsys, two_configs, run_dir):
    a, b = two_configs
    only_a = printed_config(capsys, "--config", a)
    both = printed_config(capsys, "--config", a, "--config", b)
    assert (only_a["trainer"]["max_epochs"], both["trainer"]["max_epochs"]) == (1, 2)
    assert (only_a["model"]["init_args"]["learning_rate"], both["model"]["init_args"]["learning_rate"]) == (0.01, 0.005)
    assert both["data"]["init_args"]["batch_size"] == 8
    # every key b.yaml leaves out keeps a.yaml's value: in the same sections and in others
    for section in ("trainer", "model", "data"):
        changed = {k for k in only_a[section] if only_a[section][k] != both[section][k]}
        assert changed == ({"max_epochs"} if section == "trainer" else {"init_args"}), section
    for section, key in (("model", "learning_rate"), ("data", "batch_size")):
        kept = {k: v for k, v in both[section]["init_args"].items() if k != key}
        assert kept == {k: v for k, v in only_a[section]["init_args"].items() if k != key}, section
    assert both["model"]["init_args"]["hidden"] == 8 and both["model"]["init_args"]["order"] == 2
    assert both["data"]["init_args"]["run_dir"] == str(run_dir)
    assert both["trainer"]["callbacks"] == only_a["trainer"]["callbacks"]  # a list given once is kept whole
    assert both["seed_everything"] == only_a["seed_everything"] == 0
    # the order decides: b.yaml's init_args need the class a.yaml names first (subclass mode)
    with pytest.raises(SystemExit) as stop:
        main(["fit", "--config", b, "--config", a, "--print_config"])
    assert stop.value.code == 2 and "class_path" in capsys.readouterr().err


def test_flags_after_the_configs_override_both_and_flags_before_are_overridden(capsys, two_configs):
    a, b = two_configs
    after = printed_config(capsys, "--config", a, "--config", b, "--trainer.max_epochs", "3",
                           "--model.init_args.hidden", "4")
    assert after["trainer"]["max_epochs"] == 3 and after["model"]["init_args"]["hidden"] == 4
    assert after["model"]["init_args"]["learning_rate"] == 0.005  # b's, untouched by the flags
    # arguments apply in order: a flag before a --config file that sets the same key loses to it
    before = printed_config(capsys, "--trainer.max_epochs", "5", "--trainer.deterministic", "false",
                            "--config", a, "--config", b)
    assert before["trainer"]["max_epochs"] == 2  # b.yaml's
    assert before["trainer"]["deterministic"] is True  # a.yaml's
