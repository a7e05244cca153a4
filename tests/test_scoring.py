import numpy as np
import pytest

from census_salary.bundle import Bundle
from census_salary.contract import EXAMPLE_ROW, POSITIVE, check_records
from census_salary.data import CensusData
from census_salary.scoring import PipelineScorer, Scorer

SCORERS = ["small_bundle", "pipeline_bundle"]


@pytest.fixture(params=SCORERS)
def bundle(request: pytest.FixtureRequest) -> Bundle:
    """The small model with each local scorer; every test below holds for both."""
    return request.getfixturevalue(request.param)


def test_every_scorer_implements_the_interface(bundle: Bundle) -> None:
    assert isinstance(bundle.scorer, Scorer)


def test_scorers_agree_to_the_last_bit_on_every_row_of_the_data(
    census_data: CensusData, small_bundle: Bundle, pipeline_bundle: Bundle
) -> None:
    features = census_data.features
    np.testing.assert_array_equal(
        small_bundle.probabilities(features), pipeline_bundle.probabilities(features)
    )


def test_json_rows_and_tables_score_alike(census_data: CensusData, bundle: Bundle) -> None:
    features = census_data.features.head(2000)
    records = features.astype(object).where(features.notna(), None).to_dict("records")
    np.testing.assert_array_equal(
        bundle.probabilities(check_records(records).columns), bundle.probabilities(features)
    )


def test_unknown_category_is_scored_as_missing_and_warned(bundle: Bundle) -> None:
    checked = check_records(
        [{**EXAMPLE_ROW, "workclass": "Astronaut"}, {**EXAMPLE_ROW, "workclass": None}]
    )
    odd, missing = bundle.probabilities(checked.columns)
    assert odd == missing
    assert bundle.warnings(checked.columns) == [
        ["workclass: unknown value 'Astronaut', scored as missing"],
        [],
    ]


def test_labels_follow_the_threshold(bundle: Bundle) -> None:
    p = np.array([0.1, 0.5, 0.9])
    assert bundle.labels(p, threshold=0.5).tolist() == ["<=50K", POSITIVE, POSITIVE]
    assert bundle.labels(np.array([bundle.threshold])).tolist() == [POSITIVE]


def test_no_rows_score_to_nothing(bundle: Bundle) -> None:
    empty = check_records([]).columns
    assert bundle.probabilities(empty).shape == (0,)
    assert bundle.warnings(empty) == []


def test_fast_encoder_matches_sklearn_on_every_row_of_the_data(
    census_data: CensusData, pipeline_bundle: Bundle
) -> None:
    features = census_data.features
    scorer = pipeline_bundle.scorer
    assert isinstance(scorer, PipelineScorer)
    expected = scorer.pipeline.named_steps["encode"].transform(features)
    np.testing.assert_array_equal(scorer.encode(features), expected)
