"""HTTP routes. Thin: they translate HTTP to service calls and back."""
