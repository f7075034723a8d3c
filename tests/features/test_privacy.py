"""One rule says which columns are personal data (case, spaces, underscores and hyphens ignored), followed by
the file loader's error messages, the feature builder and the service alike."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tiercast.features.builder import FeatureBuilder
from tiercast.features.loading import load_customers, load_transactions
from tiercast.features.privacy import PersonalData
from tiercast.features.schema import DataConfig, DataError
from tiercast.features.spec import FeatureSpec

DEFAULT = DataConfig().personal_data_columns  # name, email, phone, address


@pytest.mark.parametrize(("column", "personal"), [
    ("email", True), ("Email", True), ("EMAIL", True), (" Email ", True), ("E-Mail", True), ("e_mail", True),
    ("Phone", True), ("Home Address", False), ("emails_opened", False), ("region", False), ("Name", True),
])
def test_the_rule(column, personal):
    assert (column in PersonalData(DEFAULT)) is personal


def test_a_capitalised_personal_header_is_kept_out_of_an_error(tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text("customer_id,Name,Email,Phone,region\nA,Ann Lee,ann@x.org,555-0101,north\n"
                    ",Jo Secret,jo@x.org,555-0199,south\n")
    with pytest.raises(DataError) as caught:
        load_customers(path)
    message = str(caught.value)
    assert "1 rows have an empty customer_id" in message and "line 3" in message and "south" in message
    for value in ("Jo Secret", "jo@x.org", "555-0199"):
        assert value not in message


def test_a_personal_column_renamed_by_the_config_is_hidden_too(tmp_path):
    path = tmp_path / "tx.csv"
    path.write_text("customer_id,timestamp,amount,E-Mail Adresse\n,1998-01-01,5,jo@x.org\n")
    config = DataConfig.model_validate({"columns": {"transactions": {"email": "E-Mail Adresse"}}})
    with pytest.raises(DataError) as caught:
        load_transactions(path, config)
    assert "jo@x.org" not in str(caught.value)


def test_the_feature_builder_never_makes_a_feature_of_a_personal_column_however_spelled():
    tx = pd.DataFrame({"customer_id": ["A", "B", "A"], "amount": [5.0, 6.0, 7.0],
                       "timestamp": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"])})
    customers = pd.DataFrame({"customer_id": ["A", "B"], "E-Mail": ["a@x.org", "b@x.org"],
                              " PHONE ": [5550101.0, 5550199.0], "plan": ["gold", "gold"]})
    builder = FeatureBuilder(FeatureSpec(min_profile_level_count=1), personal_data_columns=DEFAULT).fit(
        tx, "2024-06-01", customers)
    profile = [name for name in builder.feature_names_ if name.startswith("profile_")]
    assert profile == ["profile_plan"]
