"""The targets of the CE k-NN report, on hand-made curves."""

from graphrel.retrieval.knn.report import axn_versus_rerank, matched_index_cost


def test_matched_index_cost_compares_at_the_highest_recall_both_reach():
    axn = [{"ce_calls_index": 5_000, "recall": 0.5}, {"ce_calls_index": 10_000, "recall": 0.7},
           {"ce_calls_index": 50_000, "recall": 0.8}]
    anncur = [{"ce_calls_index": 50_000, "recall": 0.4}, {"ce_calls_index": 250_000, "recall": 0.72}]
    match = matched_index_cost(axn, anncur)
    assert match == {"recall": 0.72, "axn_ce_calls": 50_000, "cur_ce_calls": 250_000, "ratio": 5.0}
    # AXN's cheapest point already beats the best ANNCUR point
    match = matched_index_cost(axn, [{"ce_calls_index": 500_000, "recall": 0.45}])
    assert match["axn_ce_calls"] == 5_000 and match["ratio"] == 100.0
    assert matched_index_cost([], anncur)["ratio"] is None


def test_axn_versus_rerank_needs_a_strict_win_at_every_budget_and_k():
    axn = {"B=50": {"top1_recall": 0.9, "top10_recall": 0.8}, "B=100": {"top1_recall": 0.95, "top10_recall": 0.9,
                                                                       "top100_recall": 0.5}}
    rerank = {"B=50": {"top1_recall": 0.8, "top10_recall": 0.7}, "B=100": {"top1_recall": 0.95, "top10_recall": 0.8,
                                                                          "top100_recall": 0.6}}
    result = axn_versus_rerank({"axn_mf_ind": axn, "retrieve_rerank_de": rerank})
    assert not result["holds"] and len(result["comparisons"]) == 4  # a tie at B=100, k=1; k=100 not compared
    axn["B=100"]["top1_recall"] = 0.97
    assert axn_versus_rerank({"axn_mf_ind": axn, "retrieve_rerank_de": rerank})["holds"]
