"""Tables of the intake schema."""

from servicekit.tables import new_metadata

metadata = new_metadata()
