"""The form page at `/` and the configuration it embeds for `web/app.js`."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.helpers import page_config
from census_salary.api import create_app
from census_salary.bundle import Bundle
from census_salary.config import Settings
from census_salary.contract import EXAMPLE_ROW
from census_salary.row_schema import contract_document

SCRIPT_END = "</script><script>alert(1)</script>"


def test_page_is_a_form_with_the_vocabularies(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert "<form" in response.text
    assert "Married-civ-spouse" in response.text


def test_page_config_has_the_contracts_columns(client: TestClient) -> None:
    assert page_config(client.get("/").text)["columns"] == contract_document()


def test_page_config_has_the_models_vocabularies_and_example(
    client: TestClient, small_bundle: Bundle
) -> None:
    config = page_config(client.get("/").text)
    features = small_bundle.metadata.features
    assert config["vocabularies"] == features.categorical
    assert config["ranges"] == {
        name: list(low_high) for name, low_high in features.numerical.items()
    }
    assert config["example"] == EXAMPLE_ROW
    assert (config["threshold"], config["model_version"]) == (
        small_bundle.threshold,
        small_bundle.version,
    )


def test_page_config_says_whether_a_key_is_needed(client: TestClient, keyed: TestClient) -> None:
    assert page_config(client.get("/").text)["auth_required"] is False
    assert page_config(keyed.get("/").text)["auth_required"] is True


def test_page_without_a_model_still_renders_its_columns(unloaded: TestClient) -> None:
    response = unloaded.get("/")
    assert response.status_code == 200, response.text
    config = page_config(response.text)
    assert config["model_version"] is None
    assert config["vocabularies"] == {}
    assert config["columns"] == contract_document()


def test_page_config_cannot_end_its_script_tag(
    small_settings: Settings, small_bundle: Bundle
) -> None:
    features = small_bundle.metadata.features
    vocabularies = {**features.categorical, "occupation": [SCRIPT_END]}
    metadata = small_bundle.metadata.model_copy(
        update={"features": features.model_copy(update={"categorical": vocabularies})}
    )
    bundle = Bundle(metadata, small_bundle.scorer, "a bundle with a hostile vocabulary")
    with TestClient(create_app(small_settings, bundle)) as c:
        html = c.get("/").text
    assert SCRIPT_END not in html
    assert page_config(html)["vocabularies"]["occupation"] == [SCRIPT_END]
