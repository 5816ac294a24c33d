"""The targets of the CE k-NN report, on hand-made curves and a hand-made results grid: the item
set stated, and methods compared only at budgets every compared method has."""

import pytest

from graphrel.retrieval.knn.config import KnnConfig
from graphrel.retrieval.knn.evaluation import _entries
from graphrel.retrieval.knn.report import (METHODS, axn_versus_rerank, common_budgets, item_set_note, knn_markdown,
                                           knn_targets, matched_index_cost, plot_knn)

ITEM_SET = {"items": 5000, "catalogue": 54667, "judged": 1234, "sampled": 3766, "test_queries": 300,
            "whole_catalogue": False}
AXN_SETTINGS = {"index_source": "dual_encoder", "index_queries": 10, "first_round": "dual_encoder", "blend": 0.0,
                "rounds": 2}


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


def test_axn_versus_rerank_never_pairs_figures_of_different_budgets():
    # rerank lacks B=100 and has B=200 that AXN lacks: only B=50 is compared; AXN losing at B=100
    # against rerank's B=200 (a nearest figure) must not count, nor its win against rerank's B=50
    axn = {"B=50": {"top1_recall": 0.9}, "B=100": {"top1_recall": 0.1}}
    rerank = {"B=50": {"top1_recall": 0.8}, "B=200": {"top1_recall": 0.99}}
    result = axn_versus_rerank({"axn_mf_ind": axn, "retrieve_rerank_de": rerank}, ks=(1,), budgets=(50, 100, 200))
    assert result["budgets"] == [50] and [c["budget"] for c in result["comparisons"]] == ["B=50"]
    assert result["holds"] and result["judged"]
    assert result["not_judged"] == [{"budget": "B=100", "missing": ["retrieve_rerank_de"]},
                                    {"budget": "B=200", "missing": ["axn_mf_ind"]}]
    assert common_budgets({"axn_mf_ind": axn, "retrieve_rerank_de": rerank}, ("axn_mf_ind", "retrieve_rerank_de")) == [50]
    nothing = axn_versus_rerank({"axn_mf_ind": {"B=100": {"top1_recall": 1.0}}, "retrieve_rerank_de": rerank}, ks=(1,))
    assert not nothing["judged"] and not nothing["holds"] and nothing["comparisons"] == []


def test_the_item_set_sentence_states_size_catalogue_judged_and_sampled():
    assert item_set_note(ITEM_SET) == (
        "item set: 5,000 of 54,667 catalogue products (1,234 judged for the 300 test queries, 3,766 sampled at "
        "random); a method that finds judged products is favoured against catalogue-scale search")
    whole = item_set_note({**ITEM_SET, "items": 54667, "sampled": 53433, "whole_catalogue": True})
    assert whole.startswith("item set: the whole catalogue, 54,667 products (1,234 judged") and "catalogue-scale" in whole


def _row(method, budget, recall, **settings):
    cost = {"axn_mf_ind": 10 * settings.get("index_queries", 0), "axn_mf_trns": 100,
            "anncur": 1000 * settings.get("anchor_queries", 0), "adacur": 1000 * settings.get("anchor_queries", 0)}
    return {"method": method, "budget": budget, "rounds": 1, **settings, "ce_calls_index": cost.get(method, 0),
            "index_seconds": 1.0, "top1_recall": recall, "top10_recall": recall, "ce_calls_search": float(budget),
            "ce_calls_search_total": 3 * budget, "search_seconds": 0.001}


def fake_result(missing=(), budgets=(50, 100)):
    """A results grid over ``budgets``; ``missing`` lists (method, budget) without any row.
    Recalls encode the budget (B / 1000 + a method offset), so a figure of the wrong budget shows."""
    grid, offset = [], {m: i / 1000 for i, m in enumerate(METHODS)}
    for budget in budgets:
        add = lambda method, **s: None if (method, budget) in missing else grid.append(  # noqa: E731
            _row(method, budget, budget / 1000 + offset[method] + s.pop("extra", 0), **s))
        for m in ("axn_mf_ind", "axn_mf_trns"):
            for queries in ((5, 10) if m == "axn_mf_ind" else (10,)):
                add(m, **{**AXN_SETTINGS, "index_queries": queries}, extra=queries / 100_000)
        add("retrieve_rerank_de")
        add("retrieve_rerank_bm25")
        for k_q in (2, 4):
            add("anncur", anchor_queries=k_q, extra=k_q / 100_000)
            add("adacur", anchor_queries=k_q, rounds=2, first_round="dual_encoder", extra=k_q / 100_000)
    entries = _entries(grid, KnnConfig(report_rounds=2, rounds=(1, 2)), AXN_SETTINGS, 4, None, ITEM_SET)
    targets = knn_targets(grid, entries, AXN_SETTINGS, 2, budgets)
    meta = {"test_queries": 3, "train_queries": 10, "items": 5000, "item_set": ITEM_SET, "items_per_query": 10,
            "budgets": list(budgets), "rounds": [1, 2], "top_ks": [1, 10], "anchor_queries": 4,
            "axn_settings": AXN_SETTINGS, "ground_truth": {"ce_calls": 15000, "seconds": 10.0, "pairs_per_second": 1500.0}}
    return {"knn": entries, "grid": grid, "targets": targets, "evaluation": meta}


def test_a_method_missing_a_budget_shows_a_dash_and_no_target_is_judged_there(tmp_path):
    result = fake_result(missing={("retrieve_rerank_de", 100), ("anncur", 100)})
    targets, text = result["targets"], knn_markdown(result)
    cost = targets["index_cost"]
    assert cost["budget"] == 50  # 100 (the usual one) lacks ANNCUR
    # every curve point is a B=50 figure (recall 0.05 + offset < 0.06), none of B=100 (0.1 + offset)
    for name in ("axn_curve", "anncur_curve", "adacur_curve"):
        assert cost[name] and all(0.05 <= p["recall"] < 0.06 for p in cost[name]), name
    assert "| retrieve_rerank_de | 100 | – | – | – |" in text and "| anncur | 100 | – | – | – |" in text
    assert "| retrieve_rerank_de | 50 | 0.052 | 0.052 | – |" in text  # 0.05 + its offset
    assert cost["budgets"] == [50] and cost["not_judged"] == [{"budget": "B=100", "missing": ["anncur"]}]
    beats = targets["axn_beats_rerank"]
    assert beats["budgets"] == [50] and {c["budget"] for c in beats["comparisons"]} == {"B=50"}
    assert beats["not_judged"] == [{"budget": "B=100", "missing": ["retrieve_rerank_de"]}]
    assert "not judged at B=100: no figure of retrieve_rerank_de" in text
    assert "not judged at B=100: no figure of anncur" in text and "Top-10-Recall@50" in text
    plot_knn(result, tmp_path / "knn.png")
    assert (tmp_path / "knn.png").stat().st_size > 1000


def test_without_a_budget_every_method_has_the_index_cost_target_is_not_judged():
    result = fake_result(missing={("anncur", 50), ("axn_mf_ind", 100)})
    cost = result["targets"]["index_cost"]
    assert cost["budget"] is None and cost["budgets"] == [] and not cost["holds"]
    assert cost["axn_curve"] == cost["anncur_curve"] == cost["adacur_curve"] == []
    assert cost["versus_anncur"]["ratio"] is None
    text = knn_markdown(result)
    assert "target >= 10x vs ANNCUR: **not judged**" in text and "| axn_mf_ind | 100 | – |" in text
    assert "| anncur | 50 | – |" in text


@pytest.mark.parametrize("missing", [(), {("adacur", 50)}])
def test_every_table_of_the_report_states_the_item_set(missing):
    text = knn_markdown(fake_result(missing=missing))
    note = item_set_note(ITEM_SET)
    assert text.lower().count(note) >= 5  # the headline, rounds, variants, index-cost tables and the targets
    for heading in ("### Rounds", "### AXN variants", "### Index cost", "### Targets"):
        section = text.split(heading, 1)[1]
        assert note in section.split("|", 1)[0], heading  # stated before the table's first row
