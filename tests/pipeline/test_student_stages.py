"""BERM-O's targets: the k-order graph student's scores, at any student temperature."""

import numpy as np
import pandas as pd
import pytest
import torch

from graphrel.losses import logits_for_targets, temperature_targets


@pytest.mark.parametrize("temperature", [1.0, 2.0, 0.5])
def test_online_student_learns_the_graph_students_scores_at_any_temperature(temperature):
    scores = torch.tensor([0.01, 0.2, 0.5, 0.73, 0.999])
    targets = temperature_targets(logits_for_targets(scores, temperature), temperature)
    torch.testing.assert_close(targets, scores, atol=1e-6, rtol=0)


def test_pipeline_distils_bermo_from_the_graph_students_scores_not_their_square_of_temperature(tmp_path,
                                                                                             monkeypatch):
    """BERM-O targets = the k-order student's scores, whatever the student temperature."""
    import graphrel.pipeline.student_stages as student_stages
    from graphrel.pipeline.config import PipelineConfig, StudentConfig
    from graphrel.scoring.korder_scorer import StudentScorer

    graph_scores = np.array([0.9, 0.2, 0.6], dtype=np.float32)

    class FakeScorer:
        @staticmethod
        def score(query_ids, queries, product_ids, product_texts):
            return graph_scores[: len(query_ids)]

    monkeypatch.setattr(StudentScorer, "load", classmethod(lambda cls, directory: FakeScorer()))
    captured = {}
    config = PipelineConfig(student=StudentConfig(temperature=2.0))
    monkeypatch.setattr(student_stages, "fit_student", lambda c, run_dir, name, order, frame, featurizer, **kw:
                        captured.update(frame=frame, **kw))
    scored = pd.DataFrame({"query_id": ["a", "a", "b", "c"], "query": ["a"] * 2 + ["b", "c"],
                           "product_id": ["1", "2", "3", "4"], "product_text": ["t"] * 4,
                           "split": ["train", "transfer", "train", "val"],
                           "teacher_logit": np.float32([0.1, 0.2, 0.3, 0.4])})
    student_stages.fit_online_student(config, tmp_path, scored, None, tmp_path / "student_korder", progress=False)
    learnt = temperature_targets(torch.from_numpy(captured["frame"].teacher_logit.to_numpy()[:3]), 2.0)
    np.testing.assert_allclose(learnt.numpy(), graph_scores, atol=1e-5)
    assert captured["frame"].teacher_logit.iloc[3] == np.float32(0.4)  # val pairs are not rescored
