"""Tables of the notifier schema."""

from servicekit.tables import new_metadata

metadata = new_metadata()
