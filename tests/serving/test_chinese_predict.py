"""``/predict`` of a real server run with configs/zh.yaml: every value a person reads is Chinese (model answers,
thin-history fallbacks and customers without history alike); ids, dates, numbers and the code fields are
what programs read, the same as in English."""

from __future__ import annotations

import httpx

from tiercast.features.lifecycle import STAGES

# Fields for programs: ids, dates, numbers, the contract's source (model or fallback) and the codes.
PROGRAM_FIELDS = {"customer_id", "predicted_value", "churn_probability", "source", "avg_days_between_orders",
                  "expected_next_order_date", "next_order_probability", "segment_code", "lifecycle_stage_code",
                  "churn_risk_band_code"}


def test_predict_answers_in_chinese(chinese_server, trained_store, english_words):
    tx = trained_store.transactions
    ids = sorted(tx["customer_id"].unique())[:40]
    customers = [{"customer_id": cid, "transactions": [
        {"timestamp": t.isoformat(), "amount": float(a)}
        for t, a in zip(tx.loc[tx["customer_id"] == cid, "timestamp"], tx.loc[tx["customer_id"] == cid, "amount"])]}
        for cid in ids]
    customers.append({"customer_id": "brand new", "transactions": []})  # no history: the onboarding answer
    customers.append({"customer_id": "thin", "transactions": [{"timestamp": "1998-06-29", "amount": 20.0}]})
    answer = httpx.post(chinese_server.url + "/predict", json={"as_of": "1998-07-01", "customers": customers},
                        timeout=60).json()
    predictions = answer["predictions"]
    assert [p["customer_id"] for p in predictions] == ids + ["brand new", "thin"]
    assert {p["source"] for p in predictions} == {"model", "fallback"}
    for prediction in predictions:
        for field, value in prediction.items():
            if field in PROGRAM_FIELDS or value is None:
                continue
            said = " ".join(value) if isinstance(value, list) else str(value)
            assert not english_words(said), (prediction["customer_id"], field, said)
        assert prediction["lifecycle_stage_code"] in STAGES
        assert prediction["churn_risk_band_code"] in ("low", "medium", "high")
    new, thin = predictions[-2:]
    assert new["fallback_reason"] == "评分日前没有交易" and new["tier"] == "新客培育" and new["membership"] == "普通"
    assert thin["fallback_reason"].startswith("历史太短")
    assert any("提高价值" in reason or "降低价值" in reason for p in predictions[:-2] for reason in p["reasons"])
