"""rasa-sdk actions on the shopper's orders and the store connectors behind them.

- store.py          Order/Customer/Return dataclasses, the StoreConnector protocol and its errors
- demo_store.py     DemoStore (orders in the bot's database) + load_demo_store (orders.json import)
- shopify.py        ShopifyStore (GraphQL Admin API, cost-aware throttle retries)
- ownership.py      OwnershipVerifier: order details only after proof, rate-limited in Redis
- order_actions.py  the rasa-sdk Action classes; registry.py gives them their store
- runner.py         ActionRunner (in-process rasa-sdk executor) and RemoteActionRunner (action server)
- responses.py      ResponseCatalog: domain.yml responses per locale, Babel dates and money
- invoices.py       PDF invoices with the seller's VAT data and the InvoiceStore the web app serves
"""
