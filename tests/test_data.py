import numpy as np
import pandas as pd
import pytest

from modelport.data import check_target, fingerprint, infer_schema, read_table
from modelport.errors import InvalidDataset, InvalidParameter, InvalidTarget

from .datasets import mixed_classification


def test_reads_csv_with_question_marks_as_missing(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,x\n?,y\n3, ?\n")
    frame = read_table(path)
    assert frame["a"].isna().sum() == 1
    assert frame["b"].isna().sum() == 1


def test_reads_parquet(tmp_path):
    frame = mixed_classification(50)
    frame.to_parquet(tmp_path / "t.parquet")
    assert read_table(tmp_path / "t.parquet").shape == frame.shape


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "empty"),
        (b"a,b,c\n", "no rows"),
        (b"\n\n\n", "no columns"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00IHDR", "not a CSV"),
        (bytes(range(1, 256)) * 40, "not a CSV"),  # binary without a NUL byte
        (b'a,b\n1,2\n3,4,5,6\n"', "cannot be parsed"),
    ],
)
def test_unreadable_files(tmp_path, content, words):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(InvalidDataset, match=words) as caught:
        read_table(path)
    message = caught.value.message
    assert message.count(str(path)) == 1 and ".." not in message  # said once, not re-wrapped
    assert "at least 10 rows" not in message  # reading is not training: one row is a table


def test_text_in_any_encoding_is_not_taken_for_binary(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("ville,prix\nPérigueux,3\nSète,4\x1a".encode("latin-1"))  # DOS end mark
    assert read_table(path)["ville"].tolist()[0].startswith("P")


def test_missing_file(tmp_path):
    with pytest.raises(InvalidDataset, match="does not exist"):
        read_table(tmp_path / "nope.csv")


def test_missing_target_lists_the_columns():
    with pytest.raises(InvalidTarget, match="'income' is not in the dataset.*age"):
        check_target(mixed_classification(50), "income", "auto")


def test_single_class_target():
    frame = mixed_classification(50).assign(churn="no")
    with pytest.raises(InvalidTarget, match="single class"):
        check_target(frame, "churn", "auto")


def test_too_many_classes_for_the_rows():
    frame = pd.DataFrame({"x": np.arange(600.0), "y": [f"c{i % 500}" for i in range(600)]})
    with pytest.raises(InvalidTarget, match="500 classes in 600 rows"):
        check_target(frame, "y", "classification")


def test_all_missing_target():
    frame = mixed_classification(50).assign(churn=np.nan)
    with pytest.raises(InvalidTarget, match="Every value"):
        check_target(frame, "churn", "auto")


def test_unknown_task():
    with pytest.raises(InvalidParameter, match="task 'clustering'"):
        check_target(mixed_classification(50), "churn", "clustering")


def test_task_detection():
    frame = mixed_classification(200)
    assert check_target(frame, "churn", "auto")[1] == "classification"
    frame["fee_target"] = frame["monthly fee"]
    assert check_target(frame, "fee_target", "auto")[1] == "regression"
    with pytest.raises(InvalidTarget, match="numeric target"):
        check_target(frame, "churn", "regression")


def test_schema_drops_useless_columns_and_says_why():
    frame = mixed_classification(300).assign(
        empty=np.nan, same=1, row_id=[f"id{i}" for i in range(300)]
    )
    schema = infer_schema(frame, "churn")
    assert [c.name for c in schema.columns] == ["age", "monthly fee", "plan", "region"]
    assert schema.dropped == {
        "empty": "every value is missing",
        "same": "it has a single value",
        "row_id": "every value is different (an identifier)",
    }
    plan = schema.columns[2]
    assert plan.categorical and plan.categories == ["basic", "plus", "premium"]


def test_all_columns_unusable():
    frame = pd.DataFrame({"empty": [np.nan] * 20, "y": ["a", "b"] * 10})
    with pytest.raises(InvalidDataset, match="No column is usable"):
        infer_schema(frame, "y")


def test_fingerprint_is_stable_and_sensitive():
    frame = mixed_classification(100)
    assert fingerprint(frame) == fingerprint(frame.copy())
    changed = frame.copy()
    changed.loc[0, "plan"] = "other"
    assert fingerprint(changed) != fingerprint(frame)


def test_duplicate_header_names_are_refused(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("a,b,a\n1,2,3\n")
    with pytest.raises(InvalidDataset, match="names the column.*'a' more than once"):
        read_table(path)


@pytest.mark.parametrize("separator", [";", "\t"])
def test_other_separators_and_a_byte_order_mark(tmp_path, separator):
    path = tmp_path / "t.csv"
    path.write_text(
        "\ufeff" + separator.join(["name", "value"]) + "\nx" + separator + "1,5\n", encoding="utf-8"
    )
    frame = read_table(path)
    assert list(frame.columns) == ["name", "value"]
    assert frame["value"].tolist() == ["1,5"]
