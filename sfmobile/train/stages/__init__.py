"""Training stages: each says what it trains and how its loss is computed (contract in stage.py)."""
