"""Language id, encoders, intent classification, entities and sentiment; usable with no server."""
