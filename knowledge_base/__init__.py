"""Articles, versions, multilingual search with confidence and citations, and gap mining.

Import the pieces from their modules: `knowledge_base.service.KnowledgeBase`,
`knowledge_base.search.KBSearcher`, `knowledge_base.sync.KBIndexSync`, `knowledge_base.gaps.GapMiner`.
"""
