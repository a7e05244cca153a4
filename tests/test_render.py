import numpy as np
import pandas as pd
from rich.console import Console

from census_salary.bundle import Bundle
from census_salary.metrics import slice_metrics
from census_salary.render import metrics_table, slice_table


def rendered(renderable: object) -> str:
    console = Console(record=True, width=200)
    console.print(renderable)
    return console.export_text()


def test_slice_values_are_shown_as_data_not_markup() -> None:
    features = pd.DataFrame({"workclass": ["[red]x"] * 40 + ["[/]"] * 40})
    report = slice_metrics(features, np.zeros(80), np.zeros(80), 0.5, ["workclass"], 10)
    text = rendered(slice_table(report))
    assert "[red]x" in text
    assert "[/]" in text


def test_a_title_naming_a_file_is_shown_as_written(small_bundle: Bundle) -> None:
    text = rendered(metrics_table(small_bundle.metadata.metrics, title="Evaluation on [b]x.csv"))
    assert "Evaluation on [b]x.csv" in text
