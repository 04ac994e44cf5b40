"""Wire formats between controllers (sans-IO codecs)."""
