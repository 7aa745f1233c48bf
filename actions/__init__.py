"""rasa-sdk actions on the shopper's orders and the store connectors behind them."""
