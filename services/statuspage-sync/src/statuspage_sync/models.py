"""Tables of the statuspage schema."""

from servicekit.tables import new_metadata

metadata = new_metadata()
