"""The root of the contracts exception tree."""


class ContractError(ValueError):
    """Something on the wire does not follow the moldlab contract."""
