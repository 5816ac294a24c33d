"""``graphrel`` command line.

- ``graphrel fit|validate|test|predict --config configs/<model>.yaml``: Lightning's CLI
  (``LightningCLI``) on any graphrel model and datamodule (``--print_config`` works).
- ``graphrel pipeline --config configs/home_depot.yaml --run-dir DIR``: the main job.
- ``graphrel score --model DIR --input PAIRS --output OUT.parquet``: batch scoring
  (``--engine spark``: a Parquet table on Apache Spark, :mod:`graphrel.spark.command`).
- ``graphrel inspect --run-dir DIR --query TEXT``: the graph around a query or product.

User errors print one line ``graphrel: error: ...`` and exit with code 2. ``graphrel score``
stopped by SIGINT (Ctrl-C) or SIGTERM prints one line with where its finished chunks are and
the exact ``--resume`` command, and exits with 130 or 143 (128 + the signal's number).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import warnings
from pathlib import Path

from graphrel.errors import EXIT_USER_ERROR, GraphrelInputError

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")
USAGE = """usage: graphrel COMMAND [options]

commands:
  fit | validate | test | predict   Lightning CLI, e.g. graphrel fit --config configs/korder.yaml
  pipeline                          the main job: graphrel pipeline --config configs/home_depot.yaml --run-dir DIR
  score                             batch scoring: graphrel score --model DIR --input PAIRS --output OUT.parquet
  inspect                           the graph around a query or product: graphrel inspect --run-dir DIR --query TEXT
  retrieve                          top-k products per query: graphrel retrieve --model DIR --queries FILE --k 100 --output OUT.parquet
  knn                               top-k by cross-encoder score, B CE calls per query: graphrel knn --run-dir DIR --queries FILE --k 10 --budget 100 --output OUT.parquet

Run `graphrel COMMAND --help` for every option of a command.
"""


def _lightning(argv: list[str]) -> None:
    import graphrel.models.bert2dnn  # noqa: F401  (registers classes for class_path)
    import graphrel.models.bert2dnn_data  # noqa: F401
    import graphrel.models.korder  # noqa: F401
    import graphrel.models.korder_data  # noqa: F401
    import graphrel.models.teacher  # noqa: F401
    import graphrel.models.teacher_data  # noqa: F401

    from graphrel.models.lightning_cli import GraphrelCLI  # --ckpt_path last finds earlier fits' last.ckpt

    GraphrelCLI(subclass_mode_model=True, subclass_mode_data=True, args=argv,
                save_config_kwargs={"overwrite": True})


def _pipeline(argv: list[str]) -> None:
    from jsonargparse import ActionConfigFile, ArgumentParser

    from graphrel.pipeline.config import PipelineConfig, check_config
    from graphrel.pipeline.job import Pipeline

    parser = ArgumentParser(prog="graphrel pipeline", description=(
        "Main job: split pairs by query -> fine-tune the cross-encoder teacher -> transfer set -> "
        "teacher scores -> query-product graphs -> k-order graph students (k=0 and k) -> metrics on "
        "unseen test queries under the protocols new_query and new_pairs -> report. Stages finished in "
        "--run-dir with the same config values are reused (resume); a changed value re-runs what depends on it."))
    parser.add_argument("--config", action=ActionConfigFile, help="YAML pipeline config (configs/home_depot.yaml)")
    parser.add_argument("--run-dir", required=True, help="directory for every output of the run")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_class_arguments(PipelineConfig, "pipeline", as_group=True)
    from graphrel.pipeline.config_file import nest_pipeline_keys

    nested, temporary = nest_pipeline_keys(argv)
    try:
        args = parser.parse_args(nested)
    finally:
        for path in temporary:
            os.remove(path)
    config = parser.instantiate_classes(args).pipeline
    check_config(config)
    run_dir = args.run_dir
    from pathlib import Path

    Path(run_dir).mkdir(parents=True, exist_ok=True)
    parser.save(args, str(Path(run_dir) / "config.yaml"), overwrite=True, skip_check=True)
    if args.no_progress:  # transformers' own bars too ("Loading weights" of every model load)
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    metrics = Pipeline(config, run_dir, progress=not args.no_progress).run()
    from graphrel.pipeline.report import protocol_tables

    print(protocol_tables(metrics))
    print(f"\nreport: {Path(run_dir) / 'report.md'}")


def _score(argv: list[str]) -> int:
    from graphrel.options import ArgumentParser, finite_number, reading_options, whole_number
    from graphrel.scoring.streaming import score_file

    parser = ArgumentParser(prog="graphrel score", description=(
        "Score every row of a pairs file (CSV / Parquet / JSONL) with a trained student or the teacher. Output: Parquet "
        "with row_id, query_id, product_id, score (+ label where known), one row per input row, in order. "
        "The input is streamed chunk by chunk (memory stays flat however long it is); each scored chunk is "
        "saved in OUT.parquet.parts/ as it finishes, merged into OUT.parquet at the end (atomically) and the "
        "parts folder removed; OUT.parquet.summary.json records the rows per scoring path (graph, text "
        "fallback) and the rows whose query or product id is not in the graph. One run writes an output at a "
        "time (lock file OUT.parquet.lock). After a crash, Ctrl-C or SIGTERM, run the same command with "
        "--resume to continue."))
    parser.add_argument("--model", required=True,
                        help="model directory of a run: a student (e.g. RUN/student_korder) or the teacher (RUN/teacher)")
    parser.add_argument("--input", required=True, help="pairs file")
    parser.add_argument("--output", required=True, help="output .parquet path")
    parser.add_argument("--kind", default="generic", choices=["generic", "home_depot", "esci"],
                        help="input format (default: generic, with the column options below)")
    # None = not given: an option the chosen --kind's loader does not take is refused, never dropped
    parser.add_argument("--query-column", default=None, help="query text column (generic; default query)")
    parser.add_argument("--query-id-column", default=None, help="query id column (generic; default: the query text)")
    parser.add_argument("--product-id-column", default=None, help="product id column (generic; default product_id)")
    parser.add_argument("--product-text-column", default=None,
                        help="product text column (generic; default product_text)")
    parser.add_argument("--label-column", default=None, help="optional label column (generic)")
    parser.add_argument("--label-min", type=finite_number, default=None, help="lowest label of the scale (generic)")
    parser.add_argument("--label-max", type=finite_number, default=None, help="highest label of the scale (generic)")
    parser.add_argument("--encoding", default=None,
                        help="text encoding (default: utf-8; home_depot latin-1)")
    parser.add_argument("--file-format", default=None, choices=[None, "csv", "parquet", "jsonl"],
                        help="override the format guessed from the suffix (generic, esci)")
    parser.add_argument("--batch-size", type=whole_number(1, example=512), default=512,
                        help="pairs per forward pass, >= 1 (default 512)")
    parser.add_argument("--chunk-size", type=whole_number(1, example=100_000), default=100_000,
                        help="input rows read, scored and saved at a time, >= 1 (default 100000; memory grows "
                             "with it, not with the input)")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run from the chunks saved in OUT.parquet.parts/ "
                             "(same input, model and options required)")
    parser.add_argument("--calibrated", action="store_true",
                        help="score = the expected label on the label scale, through the model's calibrator.json "
                             "(fitted on the validation queries by the pipeline's evaluation); default: the "
                             "model's score in [0, 1]")
    parser.add_argument("--engine", default="local", choices=["local", "spark"],
                        help="local (default): this process, any pairs file. spark: Apache Spark "
                             "(pip install 'graphrel[spark]'); --input is a Parquet file or directory, "
                             "--output a Parquet directory with every input column and score, rows in no "
                             "particular order; --chunk-size is the rows per Arrow batch; an interrupted "
                             "run is continued by the same command (nothing partial is kept)")
    parser.add_argument("--spark-master", default=None,
                        help="with --engine spark: the Spark master URL, e.g. local[2] (2 worker threads "
                             "here) or spark://host:7077; default: spark-submit's --master under "
                             "spark-submit, else local[2]")
    args = parser.parse_args(argv)
    from graphrel.data.datasets import kind_options

    options = reading_options(args, kind_options(args.kind))
    if args.engine == "spark":
        from graphrel.spark.command import score_with_spark

        with _signals_raise_interrupted():
            summary = score_with_spark(args)
        print(f"scored {summary['rows']:,} pairs on Spark -> {summary['output']}")
        return 0
    try:
        with _signals_raise_interrupted():
            summary = score_file(args.model, args.input, args.output, kind=args.kind, batch_size=args.batch_size,
                                 chunk_size=args.chunk_size, resume=args.resume, calibrated=args.calibrated,
                                 **options)
    except KeyboardInterrupt as stop:  # Ctrl-C / SIGINT (130) or SIGTERM (143): tell how to continue
        number = getattr(stop, "signal_number", signal.SIGINT)
        print(f"graphrel: {_stopped_message(number, argv, args.output)}", file=sys.stderr)
        return 128 + int(number)
    reused = f" ({summary.reused_chunks} of {summary.chunks} chunks resumed)" if summary.reused_chunks else ""
    print(f"scored {summary.rows:,} pairs -> {args.output}{reused}")
    if args.calibrated:
        print(f"scores: the expected label on the label scale, through {Path(args.model) / 'calibrator.json'}")
    if summary.paths:  # also in OUT.parquet.summary.json
        print(summary.paths_line())
    return 0


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGINT received: unwinds like Ctrl-C (locks released, temporary files
    removed, finished shards kept), carrying the signal's number for the exit code."""

    def __init__(self, signal_number: int) -> None:
        super().__init__(signal.Signals(signal_number).name)
        self.signal_number = signal_number


@contextlib.contextmanager
def _signals_raise_interrupted():
    """Within the block, SIGTERM and SIGINT raise :class:`Interrupted` (once: a second signal
    while cleaning up is ignored, so the cleanup finishes). A SIGINT the parent set to be
    ignored (a background job) stays ignored. Outside the main thread, nothing changes."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def handler(number, frame):
        if not received:
            received.append(number)
            raise Interrupted(number)

    wanted = [signal.SIGTERM] + ([signal.SIGINT] if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN else [])
    previous = {number: signal.signal(number, handler) for number in wanted}
    try:
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old)


def _stopped_message(number: int, argv: list[str], output: str) -> str:
    """Where the finished shards are and the exact command that continues the run."""
    import json
    import shlex
    from pathlib import Path

    from graphrel.scoring.score_parts import MANIFEST, parts_dir

    name = signal.Signals(number).name + (" (Ctrl-C)" if number == signal.SIGINT else "")
    parts = parts_dir(output)
    if not parts.is_dir():
        return f"stopped by {name} before any chunk was saved; nothing was written, run the same command to start again"
    try:
        shards = len(json.loads((parts / MANIFEST).read_text())["shards"])
    except (OSError, ValueError, KeyError, TypeError):
        shards = 0
    command = shlex.join(["graphrel", "score", *argv, *([] if "--resume" in argv else ["--resume"])])
    return (f"stopped by {name}; {shards} finished chunk(s) are kept in {parts.resolve()}; "
            f"to continue, run in {Path.cwd()}: {command}")


class _StderrHandler(logging.StreamHandler):
    """Log to whatever ``sys.stderr`` is at emit time; no reference to a stream is kept.

    Test runners and notebooks swap (and close) ``sys.stderr``; a handler bound to the stream
    of the moment would later write to, or flush, a closed file.
    """

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler API; the stream is always sys.stderr
        pass


@contextlib.contextmanager
def _log_to_stderr():
    """Within ``main()``: graphrel's INFO lines go to stderr (``HH:MM:SS graphrel: message``).

    The ``graphrel`` logger is restored on exit (handler removed, level and propagation as
    before), so calling ``main()`` leaves no logging set-up behind in the calling process.
    """
    logger = logging.getLogger("graphrel")
    level, propagate = logger.level, logger.propagate
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s graphrel: %(message)s", datefmt="%H:%M:%S"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # printed once, by this handler, whatever the root logger does
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


@contextlib.contextmanager
def _quiet_libraries(verbose: bool, command: str | None):
    """Within ``main()``, unless ``--verbose``: keep third-party noise out of graphrel's log.

    Filtered at the source, each for a reason, and restored on exit:

    - Lightning's INFO lines (``GPU available: False``, ``TPU available``, the litlogger
      advertisement, ``Trainer.fit stopped``): the ``lightning.pytorch`` logger at WARNING, so
      Lightning's own warnings still show;
    - the FutureWarning "``isinstance(treespec, LeafSpec)`` is deprecated": Lightning's
      ``_pytree`` still builds torch's deprecated ``LeafSpec`` on every batch; nothing a
      user can act on;
    - transformers' ``LOAD REPORT`` (a warning listing ``classifier.weight`` MISSING whenever
      the teacher is built on the sentence encoder: the new head is what fine-tuning trains):
      transformers' verbosity at ERROR;
    - transformers' "Loading weights" / "Writing model shards" bars, one per model load or
      save (a second each, a dozen per run): off, through huggingface_hub's switch.
    """
    if verbose:
        yield
        return
    if command in LIGHTNING_COMMANDS + ("pipeline",):
        # Lightning sets its logger to INFO when imported: import it first, then lower it
        import lightning.pytorch  # noqa: F401
    lightning_logger = logging.getLogger("lightning.pytorch")
    level = lightning_logger.level
    lightning_logger.setLevel(logging.WARNING)
    # transformers reads TRANSFORMERS_VERBOSITY when first imported (not importing it here
    # keeps commands that never load a model fast); once imported, its setter applies
    imported = sys.modules.get("transformers.utils.logging")
    before = imported.get_verbosity() if imported else None
    environment = os.environ.get("TRANSFORMERS_VERBOSITY")
    os.environ["TRANSFORMERS_VERBOSITY"] = "error"
    bars = os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS")
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"  # read when huggingface_hub is imported
    hub = sys.modules.get("huggingface_hub.utils")
    bars_were_on = hub is not None and not hub.are_progress_bars_disabled()
    if bars_were_on:
        hub.disable_progress_bars()
    transformer_bars = imported is not None and imported.is_progress_bar_enabled()
    if imported:
        imported.set_verbosity_error()
        imported.disable_progress_bar()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                                category=FutureWarning)
        try:
            yield
        finally:
            lightning_logger.setLevel(level)
            if bars is None:
                os.environ.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
            else:
                os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = bars
            if bars_were_on:  # imported later, it read the switch: nothing to restore
                hub.enable_progress_bars()
            if transformer_bars:
                imported.enable_progress_bar()
            if environment is None:
                os.environ.pop("TRANSFORMERS_VERBOSITY", None)
            else:
                os.environ["TRANSFORMERS_VERBOSITY"] = environment
            transformers_logging = sys.modules.get("transformers.utils.logging")
            if transformers_logging is not None:
                transformers_logging.set_verbosity(before if before is not None else transformers_logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``graphrel`` console script. Returns the exit code.

    ``--verbose`` anywhere in the arguments keeps the third-party log lines and warnings that
    graphrel otherwise hides (:func:`_quiet_libraries`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in argv
    argv = [a for a in argv if a != "--verbose"]
    with _log_to_stderr(), _quiet_libraries(verbose, argv[0] if argv else None):
        return _main(argv)


def _main(argv: list[str]) -> int:
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*The given NumPy array is not writable.*")
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else EXIT_USER_ERROR
    command, rest = argv[0], argv[1:]
    try:
        if command in LIGHTNING_COMMANDS:
            _lightning(argv)
        elif command == "pipeline":
            _pipeline(rest)
        elif command == "score":
            return _score(rest) or 0
        elif command == "inspect":
            from graphrel.explore.command import inspect_command

            inspect_command(rest)
        elif command == "retrieve":
            from graphrel.retrieval.serving.command import retrieve_command

            retrieve_command(rest)
        elif command == "knn":
            from graphrel.retrieval.knn.command import knn_command

            knn_command(rest)
        else:
            print(f"graphrel: error: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
            return EXIT_USER_ERROR
    except GraphrelInputError as error:
        print(f"graphrel: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        again = "add --resume to the same command" if command == "retrieve" else "re-run the same command"
        print(f"graphrel: interrupted; finished work is kept, {again} to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
