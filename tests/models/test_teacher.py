import numpy as np
import torch

from graphrel.models.teacher import CrossEncoderTeacher
from graphrel.scoring.teacher_labelling import load_teacher, teacher_logits

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


def test_interrupted_labelling_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    import graphrel.scoring.teacher_labelling as scoring
    from graphrel.scoring.teacher_labelling import teacher_logits_resumable

    rng = np.random.default_rng(0)
    words = "drill bit hose garden paint brush door hinge led light bulb steel ft in pack".split()
    queries = [" ".join(rng.choice(words, rng.integers(1, 4))) for _ in range(90)]
    products = [" ".join(rng.choice(words, rng.integers(2, 12))) for _ in range(90)]
    teacher = tiny_teacher().eval()
    whole = teacher_logits(teacher, queries, products, batch_size=8, progress=False)

    calls, real = [], scoring._logits_of_rows

    def crash_on_third_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # stands in for a kill mid-run
        return real(*args, **kwargs)

    monkeypatch.setattr(scoring, "_logits_of_rows", crash_on_third_chunk)
    parts = tmp_path / "parts"
    try:
        teacher_logits_resumable(teacher, queries, products, parts, chunk_size=16, batch_size=8, progress=False)
    except KeyboardInterrupt:
        pass
    assert sorted(p.name for p in parts.glob("chunk-*.npy")) == ["chunk-00000.npy", "chunk-00001.npy"]
    counted = []
    monkeypatch.setattr(scoring, "_logits_of_rows", lambda *a, **k: counted.append(1) or real(*a, **k))
    resumed = teacher_logits_resumable(teacher, queries, products, parts, chunk_size=16, batch_size=8,
                                       progress=False)
    assert len(counted) == 4  # 6 chunks, 2 already saved
    assert np.array_equal(resumed, whole)  # same batches as one uninterrupted call: identical
    # other pairs in the same folder: the stale chunks are discarded, every chunk is scored anew
    counted.clear()
    other = teacher_logits_resumable(teacher, queries[::-1], products[::-1], parts, chunk_size=16, batch_size=8,
                                     progress=False)
    assert len(counted) == 6 and np.allclose(other, whole[::-1], atol=1e-6)


def test_construction_leaves_the_global_random_state_alone():
    """A library class must not reseed the caller: the draw after building a tiny teacher is
    the one the caller's seed gives; the tiny weights are still the same every time."""
    torch.manual_seed(1234)
    expected = torch.rand(4)
    torch.manual_seed(1234)
    first = tiny_teacher()
    assert torch.equal(torch.rand(4), expected)
    second = tiny_teacher()
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
