"""Tables of the monitor schema."""

from servicekit.tables import new_metadata

metadata = new_metadata()
