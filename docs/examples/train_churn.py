"""Your own training code, run by a modelport job: it returns a fitted scikit-learn pipeline.

modelport calls ``train(data, target)`` with the uploaded table as a pandas DataFrame, then
converts what it returns to ONNX, checks that both predict the same, and registers the result.
"""

from sklearn.compose import make_column_transformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


def train(data, target):
    X, y = data.drop(columns=[target]), data[target]
    numbers = X.select_dtypes("number").columns.tolist()
    texts = [c for c in X.columns if c not in numbers]
    X[texts] = X[texts].fillna("")  # how the server sends a missing text value
    prepare = make_column_transformer(
        (make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numbers),
        (OneHotEncoder(handle_unknown="ignore"), texts),
    )
    model = make_pipeline(prepare, LogisticRegression(max_iter=1000)).fit(X, y)
    print(f"training accuracy {model.score(X, y):.3f}")
    return model
