import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image  # installed with matplotlib

from census_salary.audit import held_out
from census_salary.bundle import Bundle
from census_salary.config import Settings
from census_salary.contract import check_columns, columns_of_frame
from census_salary.errors import InputError
from census_salary.figures import (
    FIGURE_NAMES,
    MAX_BYTES,
    FigureData,
    SliceF1,
    render_figures,
    write_figures,
)
from census_salary.importance import permutation_importance
from census_salary.metrics import evaluate
from conftest import hand_back_figures
from test_importance import age_only, labels, toy_columns

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def figure_data(seed: int = 0, threshold: float = 0.5) -> FigureData:
    """Small synthetic inputs, the permutation importance computed from `seed`."""
    columns = toy_columns(2000)
    y = labels(columns)
    p = age_only(columns)
    slices = [
        SliceF1("sex = Female", 700, 0.61, 0.55, 0.67),
        ("sex = Male", 1250, 0.74, 0.70, 0.78),  # a plain tuple, as a caller may give
        SliceF1("race = Other", 12, None, None, None),  # too small: no F1
        SliceF1("race = White", 1700, 0.72, None, None),  # no interval
    ]
    return FigureData(
        y_true=y,
        probabilities=p,
        threshold=threshold,
        importance=permutation_importance(age_only, columns, y, threshold, seed=seed),
        slices=slices,
        overall_f1=evaluate(y, p, threshold).f1,
        subtitle="synthetic rows",
    )


@pytest.fixture(scope="module")
def drawn() -> dict[str, bytes]:
    return render_figures(figure_data())


@pytest.fixture
def drawn_before(drawn: dict[str, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    """`write_figures` hands back `drawn` instead of drawing again: for tests of writing."""
    hand_back_figures(monkeypatch, drawn)


def test_every_figure_is_drawn(drawn: dict[str, bytes]) -> None:
    assert list(drawn) == list(FIGURE_NAMES)
    assert set(FIGURE_NAMES) >= {"roc.png", "importance.png", "slices_f1.png"}


@pytest.mark.parametrize("name", FIGURE_NAMES)
def test_each_figure_is_a_readable_png(drawn: dict[str, bytes], name: str, tmp_path: Path) -> None:
    png = drawn[name]
    assert png.startswith(PNG_SIGNATURE)
    path = tmp_path / name
    path.write_bytes(png)
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
        image.load()
    assert width >= 600, image.size
    assert height >= 300, image.size


@pytest.mark.parametrize("name", FIGURE_NAMES)
def test_each_figure_is_at_most_150_kb(drawn: dict[str, bytes], name: str) -> None:
    assert len(drawn[name]) <= MAX_BYTES == 150_000, f"{name}: {len(drawn[name])} bytes"


def test_the_same_seed_gives_the_same_bytes(drawn: dict[str, bytes]) -> None:
    assert render_figures(figure_data(seed=0)) == drawn


def test_the_files_name_no_matplotlib_version(drawn: dict[str, bytes]) -> None:
    """The PNG's Software entry would change the bytes whenever matplotlib is upgraded."""
    assert not [name for name, png in drawn.items() if b"matplotlib" in png.lower()]


def test_the_threshold_is_drawn(drawn: dict[str, bytes]) -> None:
    marked = ("roc.png", "precision_recall.png", "calibration.png", "confusion.png")
    moved = render_figures(dataclasses.replace(figure_data(), threshold=0.3), marked)
    for name in marked:
        assert moved[name] != drawn[name], name


@pytest.mark.usefixtures("drawn_before")
def test_figures_are_written_whole_and_replace_old_ones(
    drawn: dict[str, bytes], tmp_path: Path
) -> None:
    folder = tmp_path / "figures"
    folder.mkdir()
    (folder / "roc.png").write_bytes(b"old")
    paths = write_figures(folder, figure_data())
    assert paths == [folder / name for name in FIGURE_NAMES]
    assert sorted(p.name for p in folder.iterdir()) == sorted(FIGURE_NAMES)  # no temp files
    assert [p.read_bytes() for p in paths] == list(drawn.values())


@pytest.mark.usefixtures("drawn_before")
def test_a_missing_folder_is_made(tmp_path: Path) -> None:
    folder = tmp_path / "a" / "b"
    write_figures(folder, figure_data())
    assert sorted(p.name for p in folder.iterdir()) == sorted(FIGURE_NAMES)


def test_a_folder_that_cannot_be_made_is_one_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    under_a_file = tmp_path / "file" / "figures"
    with pytest.raises(InputError, match=f"Cannot write {under_a_file}: .*choose another one"):
        write_figures(under_a_file, figure_data())
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_a_file_where_the_folder_belongs_is_named_as_one(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    with pytest.raises(InputError, match=f"into {not_a_folder}: it is a file, not a folder"):
        write_figures(not_a_folder, figure_data())
    assert not_a_folder.read_text() == "x"


@pytest.mark.usefixtures("drawn_before")
def test_a_failed_write_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    (tmp_path / "roc.png").write_bytes(b"old")
    monkeypatch.setattr("census_salary.files.os.fsync", full_disk)
    with pytest.raises(InputError, match=r"roc\.png: No space left on device"):
        write_figures(tmp_path, figure_data())
    assert [p.name for p in tmp_path.iterdir()] == ["roc.png"]
    assert (tmp_path / "roc.png").read_bytes() == b"old"


def test_rows_of_one_class_are_refused() -> None:
    data = figure_data()
    with pytest.raises(InputError, match="both classes"):
        render_figures(dataclasses.replace(data, y_true=np.ones_like(data.y_true)))


def test_one_probability_per_label_is_required() -> None:
    data = figure_data()
    with pytest.raises(InputError, match="one probability per label"):
        render_figures(dataclasses.replace(data, probabilities=data.probabilities[:-1]))


@pytest.mark.slow  # starts a process
def test_importing_the_modules_does_not_load_matplotlib() -> None:
    """The server imports the CLI, which names these modules: drawing loads matplotlib."""
    script = (
        "import sys\n"
        "import census_salary.figures, census_salary.importance\n"
        "print(sorted(m for m in ('matplotlib', 'PIL', 'sklearn') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_figures_of_a_trained_model(
    small_settings: Settings, small_bundle: Bundle, tmp_path: Path
) -> None:
    """The held-out split of a real (small) model: drawn and within size (that the same
    model and data draw the same bytes: test_audit, on the committed model)."""
    x, y = held_out(small_settings, small_bundle.metadata)
    columns = check_columns(columns_of_frame(x)).columns
    p = small_bundle.probabilities(columns)
    t = small_bundle.threshold

    data = FigureData(
        y_true=y.to_numpy(),
        probabilities=p,
        threshold=t,
        importance=permutation_importance(
            small_bundle.probabilities, columns, y, t, repeats=2, seed=1
        ),
        slices=[],
        overall_f1=small_bundle.metadata.metrics.f1,
        subtitle=f"model {small_bundle.version}, held-out split",
    )
    paths = write_figures(tmp_path, data)
    sizes = {path.name: path.stat().st_size for path in paths}
    assert all(size <= MAX_BYTES for size in sizes.values()), sizes
    assert all(path.read_bytes().startswith(PNG_SIGNATURE) for path in paths)
