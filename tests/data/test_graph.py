import numpy as np
import pandas as pd
import pytest

from graphrel.data.graph import EDGE, METAPATHS, MetapathNeighbours, build_graph, metapaths_for_order


def random_edges(seed=0, queries=12, products=15, edges=45):
    rng = np.random.default_rng(seed)
    pairs = {(f"q{rng.integers(queries)}", f"p{rng.integers(products)}") for _ in range(edges)}
    frame = pd.DataFrame(sorted(pairs), columns=["query_id", "product_id"])
    frame["query"] = frame["query_id"] + " text"
    frame["product_text"] = frame["product_id"] + " title"
    frame["teacher_score"] = rng.random(len(frame)).round(3)
    frame["split"] = rng.choice(["train", "test", "transfer"], len(frame))
    frame["label"] = np.where(frame["split"] == "transfer", np.nan, rng.random(len(frame)))
    return frame


def test_labels_only_on_training_edges():
    edges = random_edges()
    graph = build_graph(edges)
    label = graph[EDGE].label.numpy()
    is_train = (edges["split"] == "train").to_numpy()
    assert np.isnan(label[~is_train]).all()
    assert np.allclose(label[is_train], edges.loc[is_train, "label"])
    assert graph["query"].num_nodes == edges.query_id.nunique()
    assert graph[("product", "rev_shown", "query")].edge_index.shape == graph[EDGE].edge_index.shape


def brute_force(edges, q, p, cap):
    """Metapath instances by definition, best score first."""
    score = {(a, b): s for a, b, s in zip(edges.query_id, edges.product_id, edges.teacher_score)}
    prods = {a: [b for (x, b) in score if x == a] for a in edges.query_id}
    quers = {b: [a for (a, y) in score if y == b] for b in edges.product_id}
    out = {
        "Q-P": [(b, score[q, b]) for b in prods.get(q, []) if b != p],
        "P-Q": [(a, score[a, p]) for a in quers.get(p, []) if a != q],
    }
    first_qp = sorted(out["Q-P"], key=lambda x: -x[1])[:cap]
    first_pq = sorted(out["P-Q"], key=lambda x: -x[1])[:cap]
    out["Q-P-Q"] = [(a, s1 * score[a, b]) for b, s1 in first_qp for a in quers[b] if a != q]
    out["P-Q-P"] = [(b, s1 * score[a, b]) for a, s1 in first_pq for b in prods[a] if b != p]
    return {k: sorted(round(s, 5) for _, s in v) for k, v in out.items()}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lookup_matches_brute_force_and_never_uses_own_edge(seed):
    edges = random_edges(seed)
    cap = 3
    graph = build_graph(edges)
    neighbours = MetapathNeighbours(graph, cap=cap)
    qi, pi = neighbours.node_indices(edges.query_id, edges.product_id)
    found = neighbours.lookup(qi, pi)
    for row, (q, p) in enumerate(zip(edges.query_id, edges.product_id)):
        expected = brute_force(edges, q, p, cap)
        for name in METAPATHS:
            ids, scores = found[name].ids[row], found[name].scores[row]
            got = sorted(float(s) for s in scores[ids >= 0])
            want = sorted(sorted(expected[name])[::-1][:cap])  # the best `cap` instances
            assert len(got) == len(want) and np.allclose(got, want, atol=1e-4), name
        assert q not in [graph["query"].node_id[i] for i in found["P-Q"].ids[row] if i >= 0]
        assert p not in [graph["product"].node_id[i] for i in found["Q-P"].ids[row] if i >= 0]


def test_unseen_nodes_have_no_neighbours_and_seen_side_still_works():
    edges = random_edges()
    neighbours = MetapathNeighbours(build_graph(edges), cap=4)
    known_p = edges.product_id.iloc[0]
    qi, pi = neighbours.node_indices(["never seen query"], [known_p])
    assert qi[0] == -1 and pi[0] >= 0
    found = neighbours.lookup(qi, pi)
    assert (found["Q-P"].ids == -1).all()
    assert (found["P-Q"].ids >= 0).sum() == min((edges.product_id == known_p).sum(), 4)  # no query excluded


def test_node_rows_equal_pandas_for_every_form_of_id():
    """Ids as str, numpy str, an Arrow-string Series or a tuple, known or not, find the rows
    pandas' get_indexer finds."""
    import pandas as pd

    edges = random_edges()
    graph = build_graph(edges)
    neighbours = MetapathNeighbours(graph, cap=4)
    products = list(edges.product_id.unique()[:7]) + ["never seen", "", "p 1"]
    queries = list(edges.query_id.unique()[:5]) + ["never seen"]
    for ids in (products, np.asarray(products), pd.Series(products, dtype="string[pyarrow]"), tuple(products)):
        expected = pd.Index(graph["product"].node_id).get_indexer(pd.Index(list(ids)))
        assert neighbours.rows_of("product", ids).tolist() == expected.tolist()
    qi, pi = neighbours.node_indices(queries, products)
    assert qi.dtype == pi.dtype == np.int64 and qi[-1] == -1 and (qi[:-1] >= 0).all()
    assert pi.tolist()[-3:] == [-1, -1, -1] and (pi[:7] >= 0).all()


def test_order_selects_metapaths():
    assert metapaths_for_order(0) == ()
    assert metapaths_for_order(1) == ("Q-P", "P-Q")
    assert set(metapaths_for_order(2)) == set(METAPATHS)
    with pytest.raises(ValueError):
        metapaths_for_order(3)


@pytest.mark.parametrize("seed", [0, 1])
def test_neighbourhood_statistics_match_brute_force_without_own_edge(seed):
    edges = random_edges(seed)
    neighbours = MetapathNeighbours(build_graph(edges), cap=2)
    queries = list(edges.query_id) + ["never seen query", edges.query_id.iloc[0]]
    products = list(edges.product_id) + [edges.product_id.iloc[0], "never seen product"]
    stats = neighbours.neighbourhood_statistics(*neighbours.node_indices(queries, products))
    assert stats.shape == (len(queries), 4) and stats.dtype == np.float32
    for row, (q, p) in enumerate(zip(queries, products)):
        other_products = edges[(edges.query_id == q) & (edges.product_id != p)].teacher_score
        other_queries = edges[(edges.product_id == p) & (edges.query_id != q)].teacher_score
        want = [other_products.mean() if len(other_products) else 0.0, np.log1p(len(other_products)),
                other_queries.mean() if len(other_queries) else 0.0, np.log1p(len(other_queries))]
        assert np.allclose(stats[row], want, atol=1e-5), (row, stats[row], want)


def _named(neighbours, graph, metapath):
    """Neighbour node ids and scores of one pair, as sorted (id, score) tuples."""
    from graphrel.data.graph import NEIGHBOUR_TYPE

    names = graph[NEIGHBOUR_TYPE[metapath]].node_id
    return sorted((names[i], round(float(s), 5)) for i, s in zip(neighbours.ids[0], neighbours.scores[0]) if i >= 0)


@pytest.mark.parametrize("seed", [0, 1])
def test_hidden_query_reads_what_a_new_query_reads(seed):
    """hide_query on a pair (q, p) gives exactly the features of the same pair in a graph
    without any edge of q (q unseen there): no query side, and q never on the product side."""
    edges = random_edges(seed)
    full_graph = build_graph(edges)
    full = MetapathNeighbours(full_graph, cap=3)
    checked = 0
    for q, p in zip(edges.query_id, edges.product_id):
        without = edges[edges.query_id != q]
        if without.empty:
            continue
        graph_without = build_graph(without)
        new = MetapathNeighbours(graph_without, cap=3)
        qi, pi = full.node_indices([q], [p])
        hidden = full.lookup(qi, pi, hide_query=np.array([True]))
        qn, pn = new.node_indices([q], [p])
        assert qn[0] == -1
        unseen = new.lookup(qn, pn)
        for metapath in METAPATHS:
            assert _named(hidden[metapath], full_graph, metapath) == \
                _named(unseen[metapath], graph_without, metapath), (q, p, metapath)
        assert (hidden["Q-P"].ids == -1).all() and (hidden["Q-P-Q"].ids == -1).all()
        assert q not in _named(hidden["P-Q"], full_graph, "P-Q")
        np.testing.assert_allclose(full.neighbourhood_statistics(qi, pi, hide_query=np.array([True])),
                                   new.neighbourhood_statistics(qn, pn), rtol=1e-6)
        checked += 1
    assert checked > 20
