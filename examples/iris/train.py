"""Train a scikit-learn classifier on the iris data set (it ships with scikit-learn) and save it.

Usage: python examples/iris/train.py [OUTPUT]   (default: model.joblib next to this file)
"""

from __future__ import annotations

import sys
from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression


def train(output: Path) -> float:
    features, labels = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(features, labels)
    output.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, output)
    return float(model.score(features, labels))


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("model.joblib")
    accuracy = train(target)
    print(f"trained LogisticRegression on iris: training accuracy {accuracy:.3f}, saved to {target}")
