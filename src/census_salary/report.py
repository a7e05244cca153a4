"""Text renderings of audit results: slice_output.txt, slice tables in every format, and
the fairness summary in words (which the model card, `model_card.py`, also shows).

Everything here is a pure function of a slice report, so what a bundle holds can be
checked against it. A report written before intervals and fairness renders as it always
did.
"""

from __future__ import annotations

import csv
import io

from census_salary.bootstrap import Interval
from census_salary.fairness import GROUP_RATES, Disparity, FairnessSummary, FeatureFairness
from census_salary.metrics import INTERVALS, SLICE_RATES, Metrics, SliceMetrics, SliceReport

SLICE_COLUMNS = ("feature", "value", "rows", *SLICE_RATES, "f1_gap")
RATE_COLUMNS = SLICE_COLUMNS[4:-1]  # the rates that have intervals: selection rate to FNR
TOO_UNCERTAIN = "too uncertain"
MEASURES = {
    "demographic_parity_difference": "demographic parity difference",
    "demographic_parity_ratio": "demographic parity ratio",
    "equalized_odds_difference": "equalized odds difference",
    "false_positive_rate_gap": "false positive rate gap",
    "false_negative_rate_gap": "false negative rate gap",
}
FAIRNESS_COLUMNS = ("feature", "measure", "value", "limit", "verdict", "highest vs lowest")
GROUP_COLUMNS = ("feature", "group", "rows", ">50K", "selection_rate", "FPR", "FNR")


def fmt(value: float | int | str | bool | None, digits: int = 3, signed: bool = False) -> str:
    """A number for people: fixed digits; `n/a` where a rate is undefined."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
    return str(value)


def fmt_interval(
    value: float | None, interval: Interval | None, digits: int = 3, signed: bool = False
) -> str:
    """`0.620 [0.550, 0.690]`: a value and its 95% interval (the value alone without one)."""
    if interval is None:
        return fmt(value, digits, signed)
    low, high = (fmt(bound, digits, signed) for bound in (interval.low, interval.high))
    return f"{fmt(value, digits, signed)} [{low}, {high}]"


def slice_cells(s: SliceMetrics) -> list[str]:
    """One slice as table cells, each rate with its interval where it has one; a slice under
    min_rows says so instead of its rates, one too uncertain instead of its F1 gap."""
    head = [s.feature, s.value, str(s.rows)]
    if s.too_small:
        return [*head, *(["too small"] + [""] * (len(SLICE_COLUMNS) - 4))]
    rates = [fmt_interval(getattr(s, name), s.intervals.get(name)) for name in RATE_COLUMNS]
    gap = fmt_interval(s.f1_gap, s.intervals.get("f1_gap"), signed=True)
    return [*head, fmt(s.positive_rate), *rates, TOO_UNCERTAIN if s.too_uncertain else gap]


def _report_caption(report: SliceReport) -> list[str]:
    lines = [
        f"Slice metrics at threshold {report.threshold:.4f}; slices under {report.min_rows} "
        "rows are marked too small."
    ]
    if report.bootstrap:
        lines.append(
            f"In brackets: 95% intervals from {report.bootstrap} bootstrap resamples of all "
            f"rows (seed {report.seed}); slices whose F1 interval is wider than "
            f"{report.max_f1_width} are marked {TOO_UNCERTAIN} and not ranked."
        )
    return lines


def _fixed_width(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def render_slice_text(report: SliceReport) -> str:
    """slice_output.txt: a fixed-width table, one slice a line, grouped by feature; then the
    fairness summary, when the report has one."""
    rows = [list(SLICE_COLUMNS), slice_cells(report.overall)]
    rows += [slice_cells(s) for s in report.slices]
    lines = [*_report_caption(report), "", *_fixed_width(rows)]
    if report.fairness is not None and report.fairness.features:
        lines += ["", *_fairness_caption(report.fairness), ""]
        lines += _fixed_width([list(FAIRNESS_COLUMNS), *fairness_cells(report.fairness)])
        lines += ["", *_fixed_width([list(GROUP_COLUMNS), *group_cells(report.fairness)])]
    return "\n".join(lines) + "\n"


def render_slice_csv(report: SliceReport) -> str:
    """One row per slice; each interval as `<rate>_low` and `<rate>_high` (empty without)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    bounds = [f"{name}_{end}" for name in INTERVALS for end in ("low", "high")]
    writer.writerow([*SLICE_COLUMNS, "too_small", "too_uncertain", *bounds])
    for s in [report.overall, *report.slices]:
        ends = [
            getattr(s.intervals[name], end) if name in s.intervals else ""
            for name in INTERVALS
            for end in ("low", "high")
        ]
        writer.writerow(
            [getattr(s, c) if getattr(s, c) is not None else "" for c in SLICE_COLUMNS]
            + [s.too_small, s.too_uncertain, *ends]
        )
    return out.getvalue()


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def render_slice_markdown(report: SliceReport) -> str:
    rows = [slice_cells(report.overall)] + [slice_cells(s) for s in report.slices]
    table = markdown_table(list(SLICE_COLUMNS), rows)
    if report.bootstrap:
        table = " ".join(_report_caption(report)) + "\n\n" + table
    if report.fairness is not None and report.fairness.features:
        table += "\n" + render_fairness_markdown(report.fairness)
    return table


def limit_text(d: Disparity) -> str:
    """`<= 0.1` or `>= 0.8`: the bound a measure must keep."""
    return f"{'<=' if d.bound == 'max' else '>='} {d.limit:g}"


def fairness_cells(fairness: FairnessSummary, digits: int = 3) -> list[list[str]]:
    """One row per feature and measure: value [interval], limit, verdict, groups."""
    return [
        [
            f.feature,
            MEASURES[d.name],
            fmt_interval(d.value, d.interval, digits),
            limit_text(d),
            d.verdict,
            f"{d.high} vs {d.low}" if d.high is not None else "",
        ]
        for f in fairness.features
        for d in f.disparities
    ]


def group_cells(fairness: FairnessSummary) -> list[list[str]]:
    """One row per group of each sensitive feature: its rates with their intervals."""
    return [
        [
            f.feature,
            g.value,
            str(g.rows),
            str(g.positives),
            *(fmt_interval(getattr(g, name), g.intervals.get(name)) for name in GROUP_RATES),
        ]
        for f in fairness.features
        for g in f.groups
    ]


def _fairness_caption(fairness: FairnessSummary) -> list[str]:
    n = fairness.min_rows
    left_out = [f"{f.feature} = {value}" for f in fairness.features for value in f.left_out]
    lines = [
        f"Fairness between the groups of {', '.join(f.feature for f in fairness.features)}: "
        f"groups under {n} rows are left out"
        + (f" ({', '.join(left_out)})" if left_out else "")
        + f"; a false positive (negative) rate counts where at least {n} of the group's rows "
        "earn <=50K (>50K).",
        "A measure breaches its limit ([fairness] in census.toml) when its whole interval "
        "lies beyond it, and is unclear when the interval straddles it."
        if fairness.bootstrap
        else "A measure breaches its limit ([fairness] in census.toml) when its value lies "
        "beyond it (no bootstrap, so no intervals).",
    ]
    return lines


def metric_rows(m: Metrics) -> list[tuple[str, str]]:
    c = m.confusion
    return [
        ("rows", str(m.rows)),
        ("threshold", f"{m.threshold:.4f}"),
        ("accuracy", fmt(m.accuracy)),
        ("precision", fmt(m.precision)),
        ("recall", fmt(m.recall)),
        ("F1", fmt(m.f1)),
        ("ROC AUC", fmt(m.roc_auc)),
        ("PR AUC", fmt(m.pr_auc)),
        ("Brier score", fmt(m.brier)),
        ("positive rate (actual)", fmt(m.positive_rate)),
        ("selection rate (predicted)", fmt(m.selection_rate)),
        (
            "confusion (tn, fp, fn, tp)",
            f"{c.true_negative}, {c.false_positive}, {c.false_negative}, {c.true_positive}",
        ),
    ]


def render_fairness_markdown(fairness: FairnessSummary, heading: str = "##") -> str:
    """The fairness summary in plain words with its intervals, and a table of every
    measure against its limit (in the model card and `slice-report --format markdown`)."""
    words = [_in_words(f) for f in fairness.features]
    lines = [
        f"{heading} Fairness",
        "",
        " ".join(_fairness_caption(fairness))
        + (
            f" Intervals: 95%, from {fairness.bootstrap} bootstrap resamples."
            if fairness.bootstrap
            else ""
        ),
        "",
        *(f"- {text}" for text in words),
        "",
        markdown_table(list(FAIRNESS_COLUMNS), fairness_cells(fairness)).rstrip(),
        "",
    ]
    return "\n".join(lines) + "\n"


def _in_words(f: FeatureFairness) -> str:
    """One feature's measures as sentences: who is selected less, and missed more."""
    parity = f.disparity("demographic_parity_ratio")
    said = [f"**{f.feature}**:"]
    if parity.high is None or parity.low is None or parity.value is None:
        return f"**{f.feature}**: too few groups of enough rows to compare."
    high, low = f.group(parity.high), f.group(parity.low)
    said.append(
        f"the model predicts >50K for {low.value} at {parity.value:.2f}x the rate for "
        f"{high.value}{_ci(parity.interval, '.2f')}: for {_pct(low.selection_rate)} of "
        f"{low.value} against {_pct(high.selection_rate)} of {high.value}."
    )
    missed = f.disparity("false_negative_rate_gap")
    if missed.high is not None and missed.low is not None:
        worse, better = f.group(missed.high), f.group(missed.low)
        more = _more_often(worse.false_negative_rate, better.false_negative_rate)
        said.append(
            f"Among people who do earn >50K, it misses {worse.value} {more} than "
            f"{better.value} ({_pct(worse.false_negative_rate)} against "
            f"{_pct(better.false_negative_rate)}; a gap of {_points(missed)})."
        )
    wrong = f.disparity("false_positive_rate_gap")
    if wrong.high is not None and wrong.low is not None:
        worse, better = f.group(wrong.high), f.group(wrong.low)
        said.append(
            f"Among people who do not, it wrongly predicts >50K for "
            f"{_pct(worse.false_positive_rate)} of {worse.value} against "
            f"{_pct(better.false_positive_rate)} of {better.value} (a gap of {_points(wrong)})."
        )
    return " ".join(said)


def _more_often(rate: float | None, other: float | None) -> str:
    """`46% more often` (rate against other), or just `more often` when other is 0."""
    if not rate or not other:
        return "more often"
    return f"{rate / other - 1:.0%} more often"


def _pct(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:.1%}"


def _points(d: Disparity) -> str:
    """A gap in percentage points, with its interval."""
    value = d.value or 0.0
    if d.interval is None:
        return f"{100 * value:.1f} points"
    return (
        f"{100 * value:.1f} points, 95% CI {100 * d.interval.low:.1f}-{100 * d.interval.high:.1f}"
    )


def _ci(interval: Interval | None, spec: str) -> str:
    if interval is None:
        return ""
    return f" (95% CI {interval.low:{spec}}-{interval.high:{spec}})"
