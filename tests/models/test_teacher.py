import numpy as np
import torch

from graphrel.models.teacher import CrossEncoderTeacher
from graphrel.scoring import load_teacher, teacher_logits

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
QUERIES = ["drill bit", "garden hose", "paint brush", "door hinge", "led light bulb 60w"]
PRODUCTS = ["DeWalt 20V drill bit set", "50 ft. green garden hose", "2 in. angled paint brush",
            "steel door hinge 3-pack", "Philips 60-Watt equivalent LED light bulb"]


def tiny_teacher(**kwargs):
    return CrossEncoderTeacher(backbone_config=TINY, learning_rate=1e-3, **kwargs)


def test_length_sorted_scoring_keeps_input_order():
    teacher = tiny_teacher()
    sorted_ = teacher_logits(teacher, QUERIES, PRODUCTS, batch_size=2, progress=False)
    plain = teacher_logits(teacher, QUERIES, PRODUCTS, batch_size=2, sort_by_length=False, progress=False)
    one_by_one = [teacher_logits(teacher, [q], [p], progress=False)[0] for q, p in zip(QUERIES, PRODUCTS)]
    assert np.allclose(sorted_, plain, atol=1e-5) and np.allclose(sorted_, one_by_one, atol=1e-5)


def test_training_steps_fit_labels():
    torch.manual_seed(0)
    teacher = tiny_teacher()
    batch = dict(teacher.encode(QUERIES, PRODUCTS))
    batch["label"] = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0])
    optimizer = torch.optim.AdamW([p for p in teacher.parameters() if p.requires_grad], lr=3e-3)
    teacher.train()
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            teacher(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]), batch["label"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.5
    assert not teacher.model.get_input_embeddings().weight.requires_grad


def test_saved_teacher_gives_the_same_logits(tmp_path):
    teacher = tiny_teacher(temperature=2.0)
    teacher.save_pretrained(tmp_path)
    again = load_teacher(tmp_path)
    a = teacher_logits(teacher, QUERIES, PRODUCTS, progress=False)
    b = teacher_logits(again, QUERIES, PRODUCTS, progress=False)
    assert np.allclose(a, b, atol=1e-5)
    assert torch.allclose(teacher.scores(torch.tensor([2.0])), torch.sigmoid(torch.tensor([1.0])))
