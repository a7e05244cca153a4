import numpy as np
import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from census_salary.slicing import groups_of


def labels(frame: pd.DataFrame, feature: str | tuple[str, ...], bins: int = 4) -> list[str]:
    return [g.value for g in groups_of(frame, feature, bins)]


def test_numerical_features_are_cut_at_quartiles_of_the_values() -> None:
    ages = pd.DataFrame({"age": [20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70]})
    groups = groups_of(ages, "age", 4)
    assert [(g.value, int(g.mask.sum())) for g in groups] == [
        ("<= 30", 3),
        ("(30, 45]", 3),
        ("(45, 60]", 3),
        ("> 60", 2),
    ]


def test_repeated_values_give_fewer_bins_not_empty_ones() -> None:
    hours = pd.DataFrame({"hours_per_week": [40] * 8 + [20, 50]})
    assert labels(hours, "hours_per_week") == ["<= 40", "> 40"]


def test_zero_is_a_bin_of_its_own_where_most_values_are_zero() -> None:
    gains = pd.DataFrame({"capital_gain": [0] * 12 + [100, 200, 300, 400, 500, 600, 700, 800]})
    groups = groups_of(gains, "capital_gain", 4)
    assert [(g.value, int(g.mask.sum())) for g in groups] == [
        ("0", 12),
        ("(0, 200]", 2),
        ("(200, 400]", 2),
        ("(400, 600]", 2),
        ("> 600", 2),
    ]


def test_zero_is_not_set_apart_where_few_values_are_zero() -> None:
    gains = pd.DataFrame({"capital_gain": [0, 0, 5, 6, 7, 8]})
    assert "0" not in labels(gains, "capital_gain", 2)


def test_one_value_is_one_slice() -> None:
    assert labels(pd.DataFrame({"age": [37] * 5}), "age") == ["37"]


@given(st.lists(st.integers(0, 50) | st.just(0), min_size=1, max_size=200), st.integers(2, 6))
def test_numerical_slices_are_never_empty_and_hold_every_row_once(
    values: list[int], bins: int
) -> None:
    groups = groups_of(pd.DataFrame({"capital_loss": values}), "capital_loss", bins)
    masks = np.stack([g.mask for g in groups])
    assert masks.any(axis=1).all(), [g.value for g in groups]
    assert (masks.sum(axis=0) == 1).all()


def test_categories_are_sorted_and_missing_is_its_own() -> None:
    sex = pd.DataFrame({"sex": ["Male", np.nan, "Female", "Male"]})
    assert labels(sex, "sex") == ["?", "Female", "Male"]


def test_a_cross_slice_is_each_combination_that_has_rows() -> None:
    frame = pd.DataFrame({"sex": ["Male", "Male", "Female"], "race": ["White", "Black", "White"]})
    groups = groups_of(frame, ("sex", "race"), 4)
    assert {g.feature for g in groups} == {"sex & race"}
    assert [(g.value, g.mask.tolist()) for g in groups] == [
        ("Female & White", [False, False, True]),
        ("Male & Black", [False, True, False]),
        ("Male & White", [True, False, False]),
    ]


def test_numerical_features_cross_by_their_bins() -> None:
    frame = pd.DataFrame({"sex": ["Male", "Female"] * 4, "age": [20, 20, 30, 30, 40, 40, 50, 50]})
    assert labels(frame, ("age", "sex"), 2)[:2] == ["<= 30 & Female", "<= 30 & Male"]
