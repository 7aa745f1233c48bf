"""Articles, versions, multilingual search with confidence and citations, and gap mining."""
