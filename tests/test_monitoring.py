from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from census_salary.bundle import Bundle
from census_salary.contract import EXAMPLE_ROW
from census_salary.errors import InputError, ModelError
from census_salary.metrics import confusion, rate
from census_salary.monitoring import (
    HISTORY_FILE,
    append_history,
    monitor_rows,
    performance_by_period,
    read_history,
)


def _csv(frame: pd.DataFrame) -> io.BytesIO:
    return io.BytesIO(frame.to_csv(index=False).encode())


def test_periods_use_metrics_one_definition() -> None:
    p = np.array([0.9, 0.2, 0.8, 0.1, 0.7])
    labels = [">50K", ">50K", "<=50K", "<=50K", ">50K."]
    times = ["2026-01-31", "2026-01-01T10:00:00Z", "2026-01-15", "2026-02-01", "2026-02-28"]
    january, february = performance_by_period(p, labels, times, 0.5, "when", "month", "x")
    assert (january.period, january.start.isoformat(), january.rows) == ("2026-01", "2026-01-01", 3)
    c = confusion(np.array([1, 1, 0], bool), np.array([1, 0, 1], bool))
    assert january.accuracy == pytest.approx(1 / 3)
    assert (january.precision, january.recall) == (rate(c, "precision"), rate(c, "recall"))
    assert (january.positive_rate, january.selection_rate) == (pytest.approx(2 / 3),) * 2
    assert (february.rows, february.accuracy, february.f1) == (2, 1.0, 1.0)


def test_weeks_start_on_monday() -> None:
    (week,) = performance_by_period(
        np.array([0.9, 0.9]), [">50K"] * 2, ["2026-11-23", "2026-11-29"], 0.5, "t", "week", "x"
    )
    assert (week.start.isoformat(), week.rows) == ("2026-11-23", 2)


@pytest.mark.parametrize(
    "bad",
    [
        "yesterday",
        "",
        None,
        "2026-13-01",
        "2026-W48-6",
        "9999-12-31T23:59:59-12:00",
        "0001-01-01T00:00:00+01:00",
    ],
)
def test_a_bad_time_names_its_row_and_field(bad: object) -> None:
    with pytest.raises(InputError, match=r"row 2.*'when'.*ISO 8601") as caught:
        performance_by_period(
            np.array([0.1, 0.2]), [">50K"] * 2, ["2026-01-01", bad], 0.5, "when", "day", "x"
        )
    assert [(p.row, p.field) for p in caught.value.problems] == [(2, "when")]


@pytest.mark.parametrize("period", ["day", "week", "month"])
def test_the_first_and_last_days_of_the_calendar_have_their_periods(period: str) -> None:
    periods = performance_by_period(
        np.array([0.9, 0.9]), [">50K"] * 2, ["0001-01-01", "9999-12-31"], 0.5, "t", period, "x"
    )
    assert [p.rows for p in periods] == [1, 1]


def test_a_bad_label_names_its_row() -> None:
    with pytest.raises(InputError, match=r"row 1.*salary"):
        performance_by_period(np.array([0.1]), ["maybe"], ["2026-01-01"], 0.5, "t", "day", "x")


def test_monitor_reports_drift_of_a_file(small_bundle: Bundle, sample_frame: pd.DataFrame) -> None:
    report = monitor_rows(small_bundle, _csv(sample_frame.head(500)), chunk_size=200)
    assert report.rows == 500
    assert report.drift.rows == 500
    assert report.periods == []


def test_monitor_reads_json_lines_too(small_bundle: Bundle) -> None:
    lines = "".join(json.dumps(EXAMPLE_ROW) + "\n" for _ in range(3)).encode()
    assert monitor_rows(small_bundle, io.BytesIO(lines)).rows == 3


def test_a_time_column_without_labels_is_refused(small_bundle: Bundle) -> None:
    lines = json.dumps({**EXAMPLE_ROW, "when": "2026-01-01"}).encode()
    with pytest.raises(InputError, match="no 'salary' column"):
        monitor_rows(small_bundle, io.BytesIO(lines), time_column="when")


def test_a_missing_time_column_is_named(small_bundle: Bundle, sample_frame: pd.DataFrame) -> None:
    with pytest.raises(InputError, match="no column 'when'"):
        monitor_rows(small_bundle, _csv(sample_frame.head(5)), time_column="when")


def test_a_file_of_a_header_alone_holds_no_rows(
    small_bundle: Bundle, sample_frame: pd.DataFrame
) -> None:
    with pytest.raises(InputError, match=r"^header\.csv holds no rows\.$"):
        monitor_rows(small_bundle, _csv(sample_frame.head(0)), name="header.csv")


def test_a_bad_row_stops_the_monitor(small_bundle: Bundle) -> None:
    lines = json.dumps({**EXAMPLE_ROW, "age": "old"}).encode()
    with pytest.raises(InputError, match=r"line 1.*age"):
        monitor_rows(small_bundle, io.BytesIO(lines))


def test_a_bad_json_line_is_named_by_its_line_in_the_file(small_bundle: Bundle) -> None:
    good, bad = json.dumps(EXAMPLE_ROW), json.dumps({**EXAMPLE_ROW, "age": "old"})
    lines = f"\n{good}\n\n{bad}\n".encode()
    with pytest.raises(InputError, match=r"line 4, field 'age'"):
        monitor_rows(small_bundle, io.BytesIO(lines))


def test_a_json_line_that_is_not_a_row_stops_the_monitor(small_bundle: Bundle) -> None:
    lines = f"{json.dumps(EXAMPLE_ROW)}\n5\n".encode()
    with pytest.raises(InputError, match=r"line 2: got a number; expected an object"):
        monitor_rows(small_bundle, io.BytesIO(lines))


def test_a_file_that_is_not_utf8_stops_the_monitor(small_bundle: Bundle) -> None:
    with pytest.raises(InputError, match=r"^rows\.csv is not UTF-8 text"):
        monitor_rows(small_bundle, io.BytesIO(b"age,workclass\n39,St\xffate\n"), name="rows.csv")


def _labelled(label: str, value: str, when: str = "2026-01-01") -> str:
    return json.dumps({**EXAMPLE_ROW, label: value, "when": when})


def test_a_bad_label_of_json_lines_is_named_by_its_line(small_bundle: Bundle) -> None:
    lines = f"{_labelled('salary', '>50K')}\n\n{_labelled('salary', 'maybe')}\n".encode()
    with pytest.raises(InputError, match=r"line 3, field 'salary': got 'maybe'"):
        monitor_rows(small_bundle, io.BytesIO(lines), time_column="when", chunk_size=1)


def test_a_bad_time_in_a_later_chunk_keeps_its_row_number(small_bundle: Bundle) -> None:
    rows = [_labelled("salary", ">50K")] * 3 + [_labelled("salary", ">50K", when="soon")]
    with pytest.raises(InputError, match=r"row 4, field 'when': got 'soon'"):
        monitor_rows(
            small_bundle,
            io.BytesIO(f"[{','.join(rows)}]".encode()),
            time_column="when",
            chunk_size=2,
        )


def test_a_missing_label_is_named_as_missing(small_bundle: Bundle) -> None:
    lines = f"{json.dumps({**EXAMPLE_ROW, 'salary': None, 'when': '2026-01-01'})}\n".encode()
    with pytest.raises(InputError, match=r"line 1, field 'salary': got no value; expected"):
        monitor_rows(small_bundle, io.BytesIO(lines), time_column="when")


def test_json_rows_may_spell_the_label_differently(small_bundle: Bundle) -> None:
    lines = f"{_labelled('salary', '>50K')}\n{_labelled('Income', '<=50K')}\n".encode()
    report = monitor_rows(small_bundle, io.BytesIO(lines), time_column="when", period="day")
    assert [period.rows for period in report.periods] == [2]


def test_a_model_without_a_profile_says_so(small_bundle: Bundle) -> None:
    lines = json.dumps(EXAMPLE_ROW).encode()
    with pytest.raises(ModelError, match="no drift profile"):
        monitor_rows(replace(small_bundle, profile=None), io.BytesIO(lines))


def test_history_appends_each_run(
    small_bundle: Bundle, sample_frame: pd.DataFrame, tmp_path: Path
) -> None:
    frame = sample_frame.head(40).assign(when=["2026-01-01"] * 20 + ["2026-01-02"] * 20)
    report = monitor_rows(small_bundle, _csv(frame), time_column="when", period="day")
    append_history(tmp_path, report, small_bundle.version)
    append_history(tmp_path, report, small_bundle.version)
    history = read_history(tmp_path)
    assert [(h.period, h.rows) for h in history] == [("2026-01-01", 20), ("2026-01-02", 20)] * 2
    assert {h.model_version for h in history} == {small_bundle.version}
    assert len((tmp_path / HISTORY_FILE).read_text().splitlines()) == 4
