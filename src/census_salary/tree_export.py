"""Export a fitted HistGradientBoostingClassifier into `trees.TreeTables`.

This is the one module that reads scikit-learn's private attributes (`_predictors`,
`_preprocessor`, `_bin_mapper`, `_baseline_prediction`). They may change in any release,
so the export is checked rather than trusted: the tables, read back from their bytes,
must give exactly the pipeline's probabilities on every row of the data and on probe
rows, or nothing is exported and the bundle is scored with its pipeline. CI also runs
the suite against the newest scikit-learn, where a test fails if the export is dropped.

Each node's cover, which `explain` needs, is the `count` scikit-learn keeps per node:
how many training rows (not weighted, and without the rows held out for early stopping)
reached it. `TreeTables` checks that every split's cover is its children's sum.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

from census_salary.errors import ModelError
from census_salary.scoring import PipelineScorer
from census_salary.trees import TreeTables

logger = logging.getLogger(__name__)


def export_trees(scorer: PipelineScorer, features: pd.DataFrame) -> TreeTables | None:
    """The fitted gradient-boosted trees as numpy tables (see `census_salary.trees`).

    None for the other model kinds, and whenever the tables do not give exactly the
    pipeline's probabilities on every row of `features` and on probe rows with every
    known, unknown and missing category and every split threshold. The tables checked
    are the ones read back from their file. The export reads scikit-learn internals, so
    it is checked rather than trusted, and without it `census serve` loads the pipeline.
    """
    if not isinstance(scorer.estimator, HistGradientBoostingClassifier):
        return None
    try:
        exported = _tables_of(scorer, scorer.estimator)
        tables = TreeTables.from_bytes(exported.to_bytes(), "the exported trees")
        rows = pd.concat([features[list(tables.columns)], _probe_rows(tables)], ignore_index=True)
        got = tables.probabilities({name: rows[name].to_numpy() for name in tables.columns})
        agrees = np.array_equal(got, scorer.probabilities(rows))
    except (AttributeError, KeyError, IndexError, TypeError, ValueError, ModelError) as exc:
        logger.warning("cannot export the trees (%s); census serve will load the pipeline", exc)
        return None
    if not agrees:
        logger.warning("the exported trees disagree with the pipeline; not saving them")
        return None
    return tables


def _tables_of(scorer: PipelineScorer, estimator: HistGradientBoostingClassifier) -> TreeTables:
    if not np.array_equal(
        estimator.is_categorical_,
        [i < len(scorer.categorical) for i in range(estimator.n_features_in_)],
    ):
        raise ValueError("categorical columns are not first")
    # Our ordinal code -> the estimator's own category index, which its trees test.
    internal = estimator._preprocessor.named_transformers_["encoder"].categories_
    category_bins = []
    for codes, seen in zip(scorer.codes.values(), internal, strict=True):
        index = {float(code): i for i, code in enumerate(seen) if not np.isnan(code)}
        category_bins.append(np.array([index[code] for code in codes.values()], dtype=np.intp))
    trees = [predictors[0] for predictors in estimator._predictors]
    cuts = []
    for column in range(len(scorer.categorical), estimator.n_features_in_):
        used = [
            t.nodes[(t.nodes["is_leaf"] == 0) & (t.nodes["feature_idx"] == column)] for t in trees
        ]
        cuts.append(np.unique(np.concatenate([nodes["num_threshold"] for nodes in used])))
    n_bins = [len(codes) for codes in scorer.codes.values()] + [len(c) + 1 for c in cuts]
    known, known_index = estimator._bin_mapper.make_known_categories_bitsets()

    def in_bitset(bitset: np.ndarray, value: int) -> bool:
        return bool((int(bitset[value // 32]) >> (value % 32)) & 1)

    feature, child, value, go_right, roots, cover = [], [], [], [], [], []
    for tree in trees:
        nodes, start = tree.nodes, len(feature)
        order, new_id = [0], {0: start}
        for old in order:  # breadth first, the two children of a node side by side
            if not nodes["is_leaf"][old]:
                for kid in (int(nodes["left"][old]), int(nodes["right"][old])):
                    new_id[kid] = start + len(order)
                    order.append(kid)
        roots.append(start)
        for old in order:
            node = nodes[old]
            cover.append(float(node["count"]))  # training rows that reached the node
            right = np.zeros(max(n_bins) + 1, dtype=np.uint8)
            if node["is_leaf"]:
                feature.append(0)
                child.append(new_id[old])
                value.append(float(node["value"]))
            else:
                column = int(node["feature_idx"])
                feature.append(column)
                child.append(new_id[int(node["left"])])
                value.append(0.0)
                right[n_bins[column]] = not node["missing_go_to_left"]
                if column < len(scorer.categorical):
                    left_set = tree.raw_left_cat_bitsets[node["bitset_idx"]]
                    for category in range(n_bins[column]):
                        if in_bitset(left_set, category):
                            continue
                        is_known = in_bitset(known[known_index[column]], category)
                        right[category] = is_known or not node["missing_go_to_left"]
                else:
                    at = int(
                        np.searchsorted(
                            cuts[column - len(scorer.categorical)], node["num_threshold"]
                        )
                    )
                    right[at + 1 : n_bins[column]] = 1
            go_right.append(right)
    return TreeTables(
        categorical=tuple(scorer.categorical),
        numerical=tuple(scorer.numerical),
        vocabularies=tuple(tuple(codes) for codes in scorer.codes.values()),
        category_bins=tuple(category_bins),
        cuts=tuple(cuts),
        feature=np.array(feature, dtype=np.intp),
        child=np.array(child, dtype=np.intp),
        go_right=np.array(go_right),
        value=np.array(value),
        roots=np.array(roots, dtype=np.intp),
        baseline=float(np.ravel(estimator._baseline_prediction)[0]),
        cover=np.array(cover, dtype=np.float64),
    )


def _probe_rows(tables: TreeTables) -> pd.DataFrame:
    """Rows with every known category, a missing and an unseen one, every split threshold."""
    columns: dict[str, list[Any]] = {}
    for name, words in zip(tables.categorical, tables.vocabularies, strict=True):
        columns[name] = [*words, None, "never seen in training"]
    for name, cuts in zip(tables.numerical, tables.cuts, strict=True):
        columns[name] = [*cuts.tolist(), *np.nextafter(cuts, np.inf).tolist(), 0.0, 1e9]
    n_rows = max(len(values) for values in columns.values())
    return pd.DataFrame(
        {name: [v[i % len(v)] for i in range(n_rows)] for name, v in columns.items()}
    )
