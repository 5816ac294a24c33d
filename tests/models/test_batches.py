import numpy as np
import pandas as pd
import pytest

from graphrel.models.batches import EpochBatches


class _Rows(EpochBatches):
    def batch(self, i, rows):
        return {"item": i, "rows": rows}


@pytest.mark.parametrize("epoch_of", [None, "trainer"])
def test_items_cut_the_epochs_permutation_in_order(epoch_of):
    epochs = iter(range(3))
    current = {"epoch": 0}
    dataset = _Rows(10, 3, True, 7, epoch_of=(lambda: current["epoch"]) if epoch_of else None)
    assert len(dataset) == 4
    for epoch in epochs:
        current["epoch"] = epoch
        rows = np.concatenate([dataset[i]["rows"] for i in range(len(dataset))])
        assert rows.tolist() == np.random.default_rng(7 + epoch).permutation(10).tolist()


def test_without_shuffle_rows_are_in_frame_order():
    dataset = _Rows(7, 3, False, 0)
    assert [dataset[i]["rows"].tolist() for i in range(len(dataset))] == [[0, 1, 2], [3, 4, 5], [6]]


def test_graph_and_bag_batches_draw_the_same_rows_for_the_same_seed_and_epoch():
    from graphrel.data.ngrams import NgramFeaturizer
    from graphrel.models.bert2dnn_data import BagBatches
    from graphrel.models.korder_data import GraphBatches

    class Neighbours:
        def node_indices(self, query_ids, product_ids):
            return np.arange(len(query_ids)), np.arange(len(product_ids))

    class Featurizer:
        neighbours = Neighbours()

        def from_nodes(self, query_index, product_index, hide_query=None):
            return {}

    n = 11
    frame = pd.DataFrame({"query_id": [f"q{i}" for i in range(n)], "product_id": [f"p{i}" for i in range(n)],
                          "query": [f"word{i}" for i in range(n)], "product_text": [f"title {i}" for i in range(n)],
                          "teacher_logit": np.arange(n, dtype=np.float32), "label": np.nan})
    ngrams = NgramFeaturizer.fit(pd.concat([frame["query"], frame["product_text"]]).to_numpy(dtype=object),
                                 min_count=1, num_buckets=8)
    for epoch in (0, 1):
        graph = GraphBatches(Featurizer(), frame, 4, True, 3, epoch_of=lambda epoch=epoch: epoch)
        bags = BagBatches(ngrams, frame, 4, True, 3, epoch_of=lambda epoch=epoch: epoch)
        assert len(graph) == len(bags) == 3
        for i in range(3):
            assert graph[i]["teacher_logit"].tolist() == bags[i]["teacher_logit"].tolist()
