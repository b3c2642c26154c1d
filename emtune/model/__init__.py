"""Model resolution and loading, and the embedded tiny model."""
