"""Scoring backends of the cross-encoder teacher, checked against float32 before use.

Backends, by name (:data:`BACKENDS`):

- ``fp32``: the eager float32 model, the reference every other backend is checked against.
- ``bf16``: the same model under ``torch.autocast("cpu", dtype=torch.bfloat16)`` (matrix
  products in bfloat16, float32 accumulation; layer norms and softmax stay float32).
  Offered only where the CPU has native bfloat16 instructions (``avx512_bf16`` or
  ``amx_bf16``; :func:`bf16_support`), elsewhere it is emulated and slower than float32.
- ``int8``: dynamic int8 quantisation (``torch.ao.quantization.quantize_dynamic``: int8
  weights, activations quantised per batch) of the Linear layers of the last third of the
  encoder layers (MiniLM-L6: layers 4 and 5), the part the scores are least sensitive to;
  the rest stays float32. What was tried on the default run's MiniLM-L6 teacher (Spearman
  with float32 on 512 validation pairs): every Linear 0.962 (per-channel weights 0.976);
  all but the pooler and classifier 0.962; all but those and the last layer 0.962; all but
  those and the attention output projections 0.958; all but those and the feed-forward
  output projections 0.987 (per-channel 0.989); only layers 3-5 0.998; only layers 4-5
  0.9994; only the attention output projections, pooler and classifier 0.9995 (too little
  of the work to be faster); those plus layers 4-5 0.9990. Quantising one layer at a time,
  the first encoder layers are the most sensitive (layer 0 alone: 0.974).
- ``int8_all``: every Linear layer dynamic int8, the fastest and least faithful (Spearman
  with float32 0.95-0.98 on that teacher), kept for the agreement table.

Not here: ONNX Runtime. sentence-transformers' ``backend="onnx"`` (and its int8
quantisation) runs through optimum and onnxruntime, which this project does not install;
the export is theirs to do, not a hand-written exporter's. Static (calibrated) int8 of
the whole encoder needs FX graph-mode quantisation of the HF model, not attempted.

Measured on the default run's teacher (1,024 validation pairs, batches of 128, 2 cores with
AMX/AVX-512 bf16), speed-up over fp32 and Spearman with it: bf16 3.0x, 0.99992; int8 1.14x,
0.99938; int8_all 1.53x, 0.951. With another job busy on one of the two cores, 2 torch
threads lose bf16's gain (about 1.0x, so ``auto`` then picks int8) while 1 thread keeps it
(3.0x): the check measures the machine as it is when the run starts.

Every backend returns float32 logits. Dynamic int8 quantises each batch's activations with
that batch's range, so its logits depend (slightly) on which pairs share a batch; fp32 and
bf16 logits barely do (padding changes them by float rounding only).
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from contextlib import nullcontext
from functools import partial
from typing import Callable

import numpy as np
import torch
from torch import nn

BACKENDS = ("fp32", "bf16", "int8", "int8_all")
CHOICES = ("auto", *BACKENDS)  # teacher.scoring_backend
MIN_SPEARMAN = 0.999
MIN_SPEEDUP = 1.1
RECORD = "teacher_backend.json"  # the teacher_scoring stage's record of the check and the choice


def bf16_support() -> tuple[bool, str]:
    """Whether the CPU runs bfloat16 matrix products natively, and how that was decided.

    Uses ``torch.cpu.get_capabilities()`` (``avx512_bf16`` / ``amx_bf16``) where torch has
    it, else oneDNN's own check (``torch.ops.mkldnn._is_mkldnn_bf16_supported``, which also
    says yes for emulated bf16: the agreement check's timing then decides).

    Returns:
        (supported, a short reason for the log).
    """
    capabilities = getattr(torch.cpu, "get_capabilities", None)
    if capabilities is not None:
        try:
            found = [name for name in ("amx_bf16", "avx512_bf16") if capabilities().get(name)]
        except Exception:  # noqa: BLE001 - a capability probe must not stop a run
            found = None
        if found is not None:
            return (True, "native " + ", ".join(found)) if found else \
                (False, "the CPU has no native bfloat16 (avx512_bf16, amx_bf16)")
    try:
        supported = torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # noqa: BLE001
        supported = False
    return (True, "oneDNN reports bfloat16 support") if supported else (False, "oneDNN has no bfloat16 support")


def unavailable_backends() -> dict[str, str]:
    """Backends this machine cannot run, each with the reason (empty when all can run)."""
    supported, reason = bf16_support()
    out = {} if supported else {"bf16": reason}
    if not torch.backends.quantized.supported_engines or torch.backends.quantized.engine == "none":
        out.update({name: "torch has no quantised engine" for name in ("int8", "int8_all")})
    return out


def int8_layer_names(model: nn.Module, backend: str = "int8") -> list[str]:
    """Names of the Linear layers of ``model`` (an HF BERT-like sequence classifier) that
    backend ``int8`` (those of the last third of the encoder layers, at least the last
    layer) or ``int8_all`` (every one) quantises."""
    linears = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if backend == "int8_all":
        return linears
    layers = int(getattr(getattr(model, "config", None), "num_hidden_layers", 0) or 0)
    late = tuple(f"encoder.layer.{i}." for i in range(layers - max(1, layers // 3), layers))
    return [name for name in linears if late and any(part in name for part in late)]


def teacher_forward(teacher, backend: str = "fp32") -> Callable[..., torch.Tensor]:
    """A forward function of ``teacher`` on ``backend``.

    Args:
        teacher: a :class:`graphrel.models.teacher.CrossEncoderTeacher` (put in eval mode).
        backend: one of :data:`BACKENDS`. ``int8``/``int8_all`` quantise a copy of the
            model (the teacher itself is left float32).

    Returns:
        ``forward(input_ids, attention_mask, token_type_ids)`` -> (B,) float32 logits, the
        three inputs (B, L) int64 tensors.

    Raises:
        ValueError: for an unknown backend.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown teacher scoring backend {backend!r}; one of {BACKENDS}")
    teacher.eval()
    if backend == "fp32":
        return lambda input_ids, attention_mask, token_type_ids: \
            teacher(input_ids, attention_mask, token_type_ids).float()
    model, autocast = teacher.model, nullcontext
    if backend == "bf16":
        autocast = partial(torch.autocast, "cpu", dtype=torch.bfloat16)
    else:
        from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic

        with torch.inference_mode(False), warnings.catch_warnings():  # quantised weights: not inference tensors
            # torch 2.13 warns, once per process, that its quantised tensors will move to torchao:
            # the int8 backends are options measured against fp32, nothing a user acts on per run
            warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor.*deprecated", category=UserWarning)
            model = copy.deepcopy(model).eval()
            spec = {name: default_dynamic_qconfig for name in int8_layer_names(model, backend)}
            model = quantize_dynamic(model, spec, dtype=torch.qint8, inplace=True)

    def forward(input_ids, attention_mask, token_type_ids):
        with autocast():
            logits = model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits
        return logits.squeeze(-1).float()

    return forward


def check_agreement(teacher, queries, products, backends=BACKENDS, *, batch_size: int = 128,
                    repeats: int = 3) -> dict:
    """Score held pairs with float32 and each backend: agreement and speed.

    Each backend's first pass (a warm-up, untimed) gives its logits; then ``repeats`` timed
    passes over the same length-sorted batches of ``batch_size`` pairs, interleaved batch by
    batch (each batch is scored by every backend in turn, the order rotating), so a change in
    the machine's load hits every backend alike; a backend's pairs/s is the median over the
    passes. Tokenisation (the same for every backend) is done once and not timed. A backend this machine cannot run
    (:func:`unavailable_backends`) or that fails is listed under ``unavailable``.

    Args:
        teacher: a :class:`graphrel.models.teacher.CrossEncoderTeacher`.
        queries, products: N >= 2 strings each, the held pairs.
        backends: names of :data:`BACKENDS` to check; ``fp32`` is always checked.
        batch_size: pairs per forward pass (use the scoring run's).
        repeats: timed passes per backend (>= 1; 3 or more for a median worth the name).

    Returns:
        ``{"pairs": N, "batch_size", "repeats", "threads": torch threads,
        "backends": {name: {"pairs_per_second", "speedup" (vs fp32), "spearman" (of its
        logits with fp32's; None if undefined), "max_abs_logit_difference", "seconds":
        [the timed passes]}}, "unavailable": {name: reason}}``.

    Raises:
        ValueError: for an unknown backend, fewer than 2 pairs, or ``repeats`` < 1.
    """
    from scipy.stats import spearmanr

    from graphrel.scoring.teacher_labelling import _encode_pairs, _logits_of_rows

    queries, products = list(queries), list(products)
    unknown = [name for name in backends if name not in BACKENDS]
    if unknown or len(queries) < 2 or len(queries) != len(products) or repeats < 1:
        raise ValueError(f"check_agreement needs backends among {BACKENDS} (got {unknown or 'those'}), "
                         f">= 2 pairs (got {len(queries)} queries, {len(products)} products), repeats >= 1")
    unavailable = {name: why for name, why in unavailable_backends().items() if name in backends}
    names = ["fp32", *[n for n in dict.fromkeys(backends) if n != "fp32" and n not in unavailable]]
    ids, types = _encode_pairs(teacher, queries, products)
    order = np.argsort([len(x) for x in ids], kind="stable")

    batches = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
    forwards, logits = {}, {}
    with torch.inference_mode():
        for name in names:
            try:
                forwards[name] = teacher_forward(teacher, name)
                logits[name] = np.empty(len(order), dtype=np.float32)
                logits[name][order] = _logits_of_rows(teacher, ids, types, order, batch_size=batch_size,
                                                      forward=forwards[name])
            except Exception as error:  # noqa: BLE001 - a failing backend is reported, fp32 still runs
                if name == "fp32":
                    raise
                unavailable[name] = f"failed: {type(error).__name__}: {error}"
                forwards.pop(name, None)
        seconds = {name: [] for name in forwards}
        for _ in range(repeats):
            spent = dict.fromkeys(forwards, 0.0)
            for index, rows in enumerate(batches):
                turn = list(forwards)[index % len(forwards):] + list(forwards)[:index % len(forwards)]
                for name in turn:
                    start = time.perf_counter()
                    _logits_of_rows(teacher, ids, types, rows, batch_size=batch_size, forward=forwards[name])
                    spent[name] += time.perf_counter() - start
            for name, total in spent.items():
                seconds[name].append(total)
    reference = logits["fp32"]
    rate = {name: len(queries) / float(np.median(s)) for name, s in seconds.items()}
    table = {}
    for name in forwards:
        rho = float(spearmanr(reference, logits[name])[0]) if name != "fp32" else 1.0
        table[name] = {"pairs_per_second": round(rate[name], 1), "speedup": round(rate[name] / rate["fp32"], 3),
                       "spearman": None if math.isnan(rho) else rho,
                       "max_abs_logit_difference": float(np.max(np.abs(logits[name] - reference))),
                       "seconds": [round(s, 3) for s in seconds[name]]}
    return {"pairs": len(queries), "batch_size": batch_size, "repeats": repeats, "threads": torch.get_num_threads(),
            "backends": table, "unavailable": unavailable}


def failure(row: dict, *, min_spearman: float = MIN_SPEARMAN) -> str | None:
    """Why a backend's row of :func:`check_agreement` does not agree with fp32 (None if it does)."""
    rho = row.get("spearman")
    if rho is None:
        return "Spearman with fp32 undefined (constant logits)"
    if not rho >= min_spearman:
        return f"Spearman {rho:.5f} < {min_spearman}"
    return None


#: ``auto``'s order of preference among backends that agree with fp32: by their speed-up
#: measured on this project's 2-thread CPU machines (AVX-512 BF16 / AMX; the real teacher,
#: 1,024 validation pairs, quiet machine): bf16 3.0x, int8 (last encoder layers) 1.15x. A
#: fixed order, not the speed of the moment: the choice (and so the teacher scores every
#: later stage reads) must not depend on how busy the machine was when the run started.
PREFERENCE = ("bf16", "int8", "int8_all")


def choose_backend(agreement: dict, *, requested: str = "auto", min_spearman: float = MIN_SPEARMAN,
                   min_speedup: float = MIN_SPEEDUP) -> tuple[str, str]:
    """The backend to score with, and why.

    Args:
        agreement: a :func:`check_agreement` result.
        requested: ``auto`` (the first backend of :data:`PREFERENCE` that is available and whose
            Spearman with fp32 is >= ``min_spearman``, else fp32; deterministic: measured speeds
            are reported, not used to choose), ``fp32``, or a backend name (used if its Spearman
            passes; else fp32).
        min_spearman: the agreement a backend needs, in [0, 1].
        min_speedup: a chosen backend measured slower than this multiple of fp32 is named in
            the reason (the machine may be busy, or the CPU lack fast bf16), not rejected.

    Returns:
        (backend name, reason): the reason names each rejected backend and why
        (``"bf16: Spearman 0.99800 < 0.999"``).

    Raises:
        ValueError: for an unknown ``requested``.
    """
    if requested not in CHOICES:
        raise ValueError(f"unknown teacher scoring backend {requested!r}; one of {CHOICES}")
    table, unavailable = agreement["backends"], agreement.get("unavailable", {})
    if requested == "fp32":
        return "fp32", "fp32 requested"
    if requested != "auto":
        if requested not in table:
            why = unavailable.get(requested, "not checked")
            return "fp32", f"fell back to fp32: {requested} unavailable ({why})"
        why = failure(table[requested], min_spearman=min_spearman)
        if why is not None:
            return "fp32", f"fell back to fp32: {requested}: {why}"
        return requested, f"{requested} requested; Spearman with fp32 >= {min_spearman}"
    rejected, passing = [], []
    for name in [n for n in PREFERENCE if n in table] + [n for n in table if n not in PREFERENCE and n != "fp32"]:
        why = failure(table[name], min_spearman=min_spearman)
        (rejected.append(f"{name}: {why}") if why else passing.append(name))
    rejected += [f"{name}: unavailable ({why})" for name, why in unavailable.items()]
    others = f" (rejected: {'; '.join(rejected)})" if rejected else ""
    if not passing:
        return "fp32", f"auto: no backend agrees with fp32{others or ' (none checked)'}"
    best = passing[0]
    slow = (f"; measured only {table[best]['speedup']:.2f}x fp32 here (a busy machine, or no fast bf16?)"
            if not table[best]["speedup"] >= min_speedup else "")
    return best, (f"auto: first of {', '.join(PREFERENCE)} with Spearman >= {min_spearman}{others}{slow}")


def summary(agreement: dict, backend: str, held: str) -> str:
    """One log line: the backend that runs, its speed-up and agreement on the ``held`` pairs
    (``"512 validation pairs"``)."""
    row = agreement["backends"][backend]
    return (f"teacher scoring backend {backend}: {row['speedup']:.2f}x fp32, Spearman {row['spearman']:.5f} "
            f"with fp32, max logit difference {row['max_abs_logit_difference']:.3f} on {held}")
