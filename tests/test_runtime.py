"""The runtime: input shapes it accepts, and what it does with gaps and surprises."""

import numpy as np
import pandas as pd
import pytest

from modelport.errors import SchemaMismatch
from modelport.runtime import Predictor
from modelport.runtime.tabular import to_columns, unseen_categories

from .conftest import trained_churn


@pytest.fixture(scope="module")
def predictor():
    return Predictor(trained_churn())


ROW = {"age": 40, "monthly fee": 80.0, "plan": "basic", "region": "north"}


def test_input_forms_agree(predictor):
    rows = [ROW, {**ROW, "plan": "premium", "monthly fee": 20.0}]
    expected = predictor.predict(rows)
    frame = pd.DataFrame(rows)
    for form in (frame, {k: [r[k] for r in rows] for k in ROW}):
        result = predictor.predict(form)
        assert (result.predictions == expected.predictions).all()
        np.testing.assert_array_equal(result.probabilities, expected.probabilities)
    assert predictor.predict(ROW).predictions.tolist() == expected.predictions[:1].tolist()
    matrix = np.array([[r[k] for k in ROW] for r in rows], dtype=object)
    np.testing.assert_array_equal(predictor.predict(matrix).probabilities, expected.probabilities)


def test_column_order_does_not_matter_and_extras_are_ignored(predictor):
    shuffled = {"region": "north", "extra": "ignored", **{k: ROW[k] for k in reversed(ROW)}}
    np.testing.assert_array_equal(
        predictor.predict(shuffled).probabilities, predictor.predict(ROW).probabilities
    )


def test_missing_column_is_named(predictor):
    with pytest.raises(SchemaMismatch, match="lacks the column.*'plan'"):
        predictor.predict({k: v for k, v in ROW.items() if k != "plan"})


def test_missing_values_and_unseen_categories_still_predict(predictor):
    rows = [
        {**ROW, "age": None, "region": None},
        {**ROW, "monthly fee": "", "plan": "platinum"},
        {**ROW, "age": float("nan"), "monthly fee": "?"},
    ]
    result = predictor.predict(rows)
    assert len(result) == 3
    assert np.isfinite(result.probabilities).all()
    assert unseen_categories(predictor.manifest, to_columns(rows, predictor.manifest)) == {
        "plan": 1
    }


def test_text_in_a_number_column_is_a_clear_error(predictor):
    with pytest.raises(SchemaMismatch, match="'age' must hold numbers, but row 1 has 'old'"):
        predictor.predict({**ROW, "age": "old"})


def test_ragged_columns(predictor):
    columns = {k: [v, v] for k, v in ROW.items()}
    columns["age"] = [1]
    with pytest.raises(SchemaMismatch, match="different lengths"):
        predictor.predict(columns)


def test_unsupported_input_type(predictor):
    with pytest.raises(SchemaMismatch, match="Cannot read rows of type int"):
        predictor.predict(42)
