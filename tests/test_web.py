"""The form page at `/`, driven in a real Chromium against a real `census serve`."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from playwright.sync_api import Browser, Page, Request, Route, expect, sync_playwright

from census_salary.config import Settings
from census_salary.contract import EXAMPLE_ROW, canonical_name
from census_salary.row_schema import contract_document
from live_server import LiveServer, live_server

pytestmark = pytest.mark.slow

# Debian's Chromium here and in .ci/run; another build (GitHub's Chrome) through the variable.
CHROMIUM = Path(os.environ.get("CENSUS_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
API_KEY = "test-key-0123456789"
LABELS = {">50K", "<=50K"}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium); "
            "these tests never download a browser."
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def server(open_server: LiveServer) -> LiveServer:
    return open_server


@pytest.fixture(scope="module")
def keyed_server(
    small_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    log = tmp_path_factory.mktemp("web-keyed-server") / "serve.log"
    with live_server(small_settings.source, log, env={"CENSUS_API_KEY": API_KEY}) as running:
        yield running


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    yield page
    context.close()


# The page asks for explanations, and asks again without when the model has none.
PREDICT_URL = re.compile(r"/predict(\?explain=true)?$")


def open_form(page: Page, server: LiveServer) -> None:
    response = page.goto(f"{server.url}/")
    assert response is not None, "no response for /"
    assert response.status == 200, f"GET / answered {response.status}:\n{server.log()}"
    expect(page.locator("#predict-form")).to_have_attribute("data-ready", "true")


def fill_person(page: Page) -> None:
    """Change a few fields away from the example row."""
    page.get_by_label("Age").fill("52")
    page.get_by_label("Education", exact=True).select_option("Masters")
    page.get_by_label("Hours worked per week").fill("50")


def expected_row() -> dict[str, Any]:
    """The example row with the changes `fill_person` makes, snake_case keys."""
    row = {canonical_name(name): value for name, value in EXAMPLE_ROW.items()}
    # Choosing "Masters" also sets its education level (14).
    row.update(age=52, education="Masters", education_num=14, hours_per_week=50)
    return row


def submit_and_capture(page: Page) -> Request:
    with page.expect_request(PREDICT_URL) as posted:
        page.get_by_role("button", name="Predict").click()
    return posted.value


def shown_percent(page: Page, selector: str) -> float:
    text = page.locator(selector).inner_text()
    match = re.match(r"\s*(\d+\.\d)%", text)
    assert match, f"{selector} should start with a percentage with one decimal, got {text!r}"
    return float(match.group(1))


def test_form_starts_with_the_example_row(page: Page, server: LiveServer) -> None:
    open_form(page, server)

    values = {
        name: page.locator(f"#field-{canonical_name(name)}").input_value() for name in EXAMPLE_ROW
    }

    assert values == {name: str(value) for name, value in EXAMPLE_ROW.items()}, values


def test_category_lists_come_from_the_model_vocabulary(page: Page, server: LiveServer) -> None:
    open_form(page, server)
    vocabulary = httpx.get(f"{server.url}/metadata").json()["features"]["categorical"]

    options = page.locator("#field-marital_status option").all_inner_texts()

    assert options == ["Unknown", *vocabulary["marital_status"]], options


def test_page_posts_the_changed_fields_as_one_row(page: Page, server: LiveServer) -> None:
    open_form(page, server)
    fill_person(page)

    posted = submit_and_capture(page).post_data_json

    assert posted == {"inputs": [expected_row()]}, posted


def test_unknown_category_is_sent_as_null(page: Page, server: LiveServer) -> None:
    open_form(page, server)
    page.get_by_label("Occupation").select_option(label="Unknown")

    posted = submit_and_capture(page).post_data_json

    assert posted["inputs"][0]["occupation"] is None, posted


def test_result_shows_what_the_api_returns_for_the_row(page: Page, server: LiveServer) -> None:
    open_form(page, server)
    fill_person(page)
    submit_and_capture(page)
    expect(page.locator("#result-label")).to_have_text(re.compile(r"^(>50K|<=50K)$"))

    direct = httpx.post(f"{server.url}/predict", json={"inputs": [expected_row()]})
    assert direct.status_code == 200, direct.text
    answer = direct.json()
    shown = {
        "label": page.locator("#result-label").inner_text(),
        "probability": shown_percent(page, "#result-probability"),
        "threshold": shown_percent(page, "#result-threshold"),
        "version": page.locator("#result-model-version").inner_text(),
    }

    assert shown["label"] in LABELS, shown
    assert shown["label"] == answer["predictions"][0], (shown, answer)
    # Shown to one decimal of a percent: within half a unit of that last digit.
    assert abs(shown["probability"] - answer["probabilities"][0] * 100) <= 0.05 + 1e-9, (
        shown,
        answer,
    )
    assert abs(shown["threshold"] - answer["threshold"] * 100) <= 0.05 + 1e-9, (shown, answer)
    assert shown["version"] == answer["model_version"], (shown, answer)


def test_result_shows_the_largest_contributions_as_bars(page: Page, server: LiveServer) -> None:
    open_form(page, server)
    fill_person(page)
    submit_and_capture(page)
    reasons = page.locator("#result-reasons li")
    expect(reasons).to_have_count(5)

    direct = httpx.post(f"{server.url}/predict?explain=true", json=[expected_row()])
    contributions = direct.json()["contributions"][0]
    largest = sorted(contributions.items(), key=lambda item: -abs(item[1]))[:5]
    labels = {
        name: page.locator(f'label[for="field-{name}"]').inner_text().strip() for name, _ in largest
    }
    shown = [
        [
            reasons.nth(i).locator("span").first.inner_text(),
            reasons.nth(i).locator(".reason-value").inner_text(),
        ]
        for i in range(5)
    ]
    minus = "\N{MINUS SIGN}"
    expected = [
        [labels[name], f"{'+' if value > 0 else minus}{abs(value):.2f}"] for name, value in largest
    ]
    assert shown == expected, (shown, expected)
    widths = [reasons.nth(i).locator(".reason-bar").bounding_box()["width"] for i in range(5)]
    assert widths == sorted(widths, reverse=True), widths
    assert widths[-1] > 0, widths


def test_a_model_without_explanations_still_predicts(page: Page, server: LiveServer) -> None:
    page.route(
        re.compile(r"/predict\?explain=true$"),
        lambda route: route.fulfill(status=409, json={"status": 409, "detail": "no trees"}),
    )
    open_form(page, server)
    page.get_by_role("button", name="Predict").click()

    expect(page.locator("#result-label")).to_have_text(re.compile(r"^(>50K|<=50K)$"))
    expect(page.locator("#result-reasons-box")).to_be_hidden()


def test_button_is_disabled_while_the_request_is_in_flight(page: Page, server: LiveServer) -> None:
    held: list[Route] = []
    page.route(PREDICT_URL, lambda route: held.append(route))
    open_form(page, server)
    button = page.locator("#submit")

    button.click()
    expect(button).to_be_disabled()
    page.wait_for_timeout(50)
    assert len(held) == 1, f"expected one held /predict request, got {len(held)}"
    held[0].continue_()

    expect(page.locator("#result-label")).to_have_text(re.compile(r"^(>50K|<=50K)$"))
    expect(button).to_be_enabled()


def test_a_server_that_never_answers_is_given_up_on(page: Page, server: LiveServer) -> None:
    page.clock.install()
    page.route(PREDICT_URL, lambda route: None)  # held for ever, as by a stopped server
    open_form(page, server)
    button = page.locator("#submit")
    button.click()
    expect(button).to_be_disabled()

    page.clock.run_for("00:31")

    error = page.locator("#error")
    expect(error).to_contain_text("did not answer within 30 seconds")
    expect(error).to_be_focused()
    expect(button).to_be_enabled()


def test_focus_comes_back_to_the_button_after_a_result(page: Page, server: LiveServer) -> None:
    open_form(page, server)
    page.locator("#submit").focus()
    page.keyboard.press("Enter")

    expect(page.locator("#result-label")).to_have_text(re.compile(r"^(>50K|<=50K)$"))
    expect(page.locator("#submit")).to_be_focused()


def test_an_error_before_sending_hides_the_answer_to_other_values(
    page: Page, server: LiveServer
) -> None:
    open_form(page, server)
    page.get_by_role("button", name="Predict").click()
    expect(page.locator("#result")).to_be_visible()

    page.get_by_label("Age").fill("130")
    page.get_by_role("button", name="Predict").click()

    expect(page.locator("#error")).to_contain_text("Age must be at most 120")
    expect(page.locator("#result")).to_be_hidden()
    page.get_by_role("button", name="Reset to example").click()
    expect(page.locator("#error")).to_be_hidden()


def test_a_fields_problem_is_shown_under_it_and_read_with_it(
    page: Page, server: LiveServer
) -> None:
    open_form(page, server)
    page.get_by_label("Age").fill("130")
    page.get_by_role("button", name="Predict").click()

    age = page.locator("#field-age")
    note = page.locator("#problem-age")
    expect(note).to_have_text("Age must be at most 120.")
    expect(age).to_have_attribute("aria-describedby", "hint-age problem-age")
    age.fill("40")  # corrected: the note goes
    expect(note).to_have_count(0)
    expect(age).to_have_attribute("aria-describedby", "hint-age")


def test_the_explanation_fits_a_320_pixel_screen(page: Page, server: LiveServer) -> None:
    page.set_viewport_size({"width": 320, "height": 700})
    open_form(page, server)
    page.get_by_role("button", name="Predict").click()
    expect(page.locator("#result-reasons-box")).to_be_visible()

    overflow = page.evaluate("document.documentElement.scrollWidth - innerWidth")
    widths = page.locator(".reason-track").evaluate_all("els => els.map(e => e.clientWidth)")
    assert overflow <= 0, overflow
    assert min(widths) >= 40, widths


def submit_with(page: Page, server: LiveServer, label: str, value: str) -> list[str]:
    """Open the form, fill one field, submit; the /predict requests sent."""
    sent: list[str] = []
    page.on("request", lambda request: sent.append(request.url))
    open_form(page, server)
    page.get_by_label(label).fill(value)
    page.get_by_role("button", name="Predict").click()
    return [url for url in sent if PREDICT_URL.search(url)]


def test_out_of_range_value_is_refused_before_sending(page: Page, server: LiveServer) -> None:
    sent = submit_with(page, server, "Age", "130")

    expect(page.locator("#error")).to_contain_text("Age must be at most 120")
    assert not sent, sent


def test_number_limits_are_the_servers_columns(page: Page, server: LiveServer) -> None:
    served = httpx.get(f"{server.url}/metadata").json()["columns"]
    open_form(page, server)

    numbers = [column["name"] for column in served if column["kind"] == "number"]
    shown = {
        name: (
            page.locator(f"#field-{name}").get_attribute("min"),
            page.locator(f"#field-{name}").get_attribute("max"),
        )
        for name in numbers
    }

    assert served == contract_document(), served
    assert shown == {
        column["name"]: (str(column["minimum"]), str(column["maximum"]))
        for column in contract_document()
        if column["kind"] == "number"
    }, shown
    assert shown["age"] == ("0", "120"), shown


def test_number_limits_follow_the_page_config(page: Page, server: LiveServer) -> None:
    """Nothing in the page hard-codes a limit: change the served columns, the inputs follow."""
    config_script = re.compile(
        r'(<script id="census-config" type="application/json">)(.*?)(</script>)'
    )

    def with_other_age_limits(route: Route) -> None:
        response = route.fetch()
        found = config_script.search(response.text())
        assert found, "the page has no census-config script"
        config = json.loads(found.group(2))
        for column in config["columns"]:
            if column["name"] == "age":
                column.update(minimum=16, maximum=99)
        data = json.dumps(config).replace("<", "\\u003c")
        html = config_script.sub(lambda m: m.group(1) + data + m.group(3), response.text())
        route.fulfill(response=response, body=html)

    page.route(f"{server.url}/", with_other_age_limits)
    open_form(page, server)
    age = page.locator("#field-age")

    assert (age.get_attribute("min"), age.get_attribute("max")) == ("16", "99")


def test_server_validation_error_shows_its_detail(page: Page, server: LiveServer) -> None:
    open_form(page, server)
    # Lift the browser's own limit so the server's check is the one that answers.
    page.locator("#field-age").evaluate("element => element.removeAttribute('max')")
    page.get_by_label("Age").fill("130")

    page.get_by_role("button", name="Predict").click()

    error = page.locator("#error")
    expect(error).to_contain_text("row 0, field 'age'")
    expect(error).to_contain_text("Age: got 130; expected a whole number from 0 to 120")
    expect(error).to_have_attribute("role", "alert")
    expect(page.locator("#field-age")).to_have_attribute("aria-invalid", "true")


def test_open_server_hides_the_key_field(page: Page, server: LiveServer) -> None:
    open_form(page, server)

    expect(page.get_by_label("API key")).to_be_hidden()


def test_page_requests_nothing_from_other_hosts(page: Page, server: LiveServer) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    open_form(page, server)
    fill_person(page)
    page.get_by_role("button", name="Predict").click()
    expect(page.locator("#result-label")).to_have_text(re.compile(r"^(>50K|<=50K)$"))

    foreign = [
        url
        for url in requested
        if not url.startswith(f"{server.url}/") and not url.startswith("data:")
    ]

    assert f"{server.url}/static/app.js" in requested, requested
    assert foreign == [], requested


def test_keyed_server_shows_the_key_field(page: Page, keyed_server: LiveServer) -> None:
    open_form(page, keyed_server)

    key = page.get_by_label("API key")

    expect(key).to_be_visible()
    expect(key).to_have_attribute("type", "password")


def test_submit_without_key_shows_an_error(page: Page, keyed_server: LiveServer) -> None:
    open_form(page, keyed_server)

    page.get_by_role("button", name="Predict").click()

    expect(page.locator("#error")).to_contain_text("API key is required")
    expect(page.locator("#result")).to_be_hidden()


def test_wrong_key_shows_the_server_detail(page: Page, keyed_server: LiveServer) -> None:
    open_form(page, keyed_server)
    page.get_by_label("API key").fill("not-the-key")

    page.get_by_role("button", name="Predict").click()

    expect(page.locator("#error")).to_contain_text("The key given is wrong")
    expect(page.locator("#result")).to_be_hidden()


def test_a_key_no_header_can_carry_is_refused_before_sending(
    page: Page, keyed_server: LiveServer
) -> None:
    sent = submit_with(page, keyed_server, "API key", "clé-ключ")

    expect(page.locator("#error")).to_contain_text("only printable ASCII")
    expect(page.locator("#field-api_key")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#field-api_key")).to_be_focused()
    assert not sent, sent


def test_right_key_shows_a_result(page: Page, keyed_server: LiveServer) -> None:
    open_form(page, keyed_server)
    page.get_by_label("API key").fill(API_KEY)

    page.get_by_role("button", name="Predict").click()

    expect(page.locator("#result-label")).to_have_text(re.compile(r"^(>50K|<=50K)$"))
    expect(page.locator("#error")).to_be_hidden()


# --- the docs, offline, and the page under its Content-Security-Policy ------------------


def offline(page: Page, server: LiveServer) -> tuple[list[str], list[str]]:
    """Abort every request that is not to the server (as with no network); return the
    requests aborted and the console's complaints about the Content-Security-Policy."""
    aborted: list[str] = []
    refused: list[str] = []

    def only_the_server(route: Route) -> None:
        if route.request.url.startswith(f"{server.url}/"):
            route.continue_()
        else:
            aborted.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_server)
    page.on(
        "console",
        lambda message: (
            refused.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    return aborted, refused


def test_docs_render_the_operations_offline(page: Page, server: LiveServer) -> None:
    aborted, refused = offline(page, server)

    response = page.goto(f"{server.url}/docs")

    assert response is not None, "no response for /docs"
    assert response.status == 200, server.log()
    for path in ("/health", "/ready", "/metadata", "/predict"):
        expect(page.locator(".opblock-summary-path", has_text=path).first).to_have_text(path)
    assert aborted == [], aborted
    assert refused == [], refused


def test_docs_try_it_out_scores_the_example(page: Page, server: LiveServer) -> None:
    aborted, refused = offline(page, server)
    page.goto(f"{server.url}/docs#/model/predict_predict_post")
    operation = page.locator("#operations-model-predict_predict_post")
    operation.get_by_role("button", name="Try it out").click()

    operation.get_by_role("button", name="Execute").click()

    status = operation.locator(".live-responses-table tbody .response-col_status")
    expect(status).to_have_text("200")
    assert aborted == [], aborted
    assert refused == [], refused


def test_redoc_renders_the_operations_offline(page: Page, server: LiveServer) -> None:
    aborted, _ = offline(page, server)

    response = page.goto(f"{server.url}/redoc")

    assert response is not None, "no response for /redoc"
    assert response.status == 200, server.log()
    for name in ("Health", "Ready", "Metadata", "Predict"):
        expect(page.get_by_role("heading", name=re.compile(rf"\b{name}$"))).to_be_visible()
    assert aborted == [], aborted


def test_page_works_under_its_policy_with_no_complaint(page: Page, server: LiveServer) -> None:
    aborted, refused = offline(page, server)
    open_form(page, server)
    fill_person(page)

    page.get_by_role("button", name="Predict").click()

    expect(page.locator("#result-label")).to_have_text(re.compile(r"^(>50K|<=50K)$"))
    expect(page.locator("#meter-fill")).to_have_attribute("style", re.compile(r"width: \d"))
    assert aborted == [], aborted
    assert refused == [], refused


def test_page_cannot_be_framed_even_by_its_own_site(page: Page, server: LiveServer) -> None:
    framing = f'<iframe id="framed" src="{server.url}/"></iframe>'
    page.route(f"{server.url}/framing", lambda route: route.fulfill(body=framing))
    refused: list[str] = []
    page.on("console", lambda message: refused.append(message.text))

    with page.expect_response(f"{server.url}/") as framed:
        page.goto(f"{server.url}/framing")

    assert framed.value.status == 200
    expect(page.frame_locator("#framed").locator("#predict-form")).to_have_count(0)
    assert any("frame-ancestors" in text for text in refused), refused
