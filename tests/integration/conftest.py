from tests.integration.support import lab_inventory_copy  # noqa: F401  (fixture)
