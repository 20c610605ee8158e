"""Inventory plugin: one YAML file per tenant becomes the platform variable `pbx_tenants`."""

from __future__ import annotations

import os
import re

import yaml
from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin

DOCUMENTATION = r"""
name: tenants
short_description: Load Bulkhead tenants, one YAML file per tenant
description:
  - Reads every C(*.yml) file in O(tenants_dir) (sorted by name) as one tenant and sets the
    list as the variable C(pbx_tenants) on the C(all) group. Each tenant gets a C(_file) key
    (path relative to the inventory directory) so that validation messages can name the file.
  - Tenants are data; this plugin does not judge them. The C(validate_inventory) role checks
    the whole model before any host is touched, so a bad value is reported with its tenant and
    field instead of making the inventory disappear.
  - Adds each PBX host named under a tenant's C(addresses) to the group C(tenant_<slug>) when
    the host is already in the inventory (unknown hosts are reported by validation, never
    created here).
options:
  plugin:
    description: Token that makes this file an inventory source for this plugin.
    required: true
    choices: [tenants]
  tenants_dir:
    description: Directory of tenant files, relative to this configuration file.
    type: str
    default: tenants
"""

EXAMPLES = r"""
# inventories/prod/tenants.yml
plugin: tenants
tenants_dir: tenants
"""

# Group names are made only from well-formed slugs; anything else is validation's business.
_GROUPABLE_SLUG = re.compile(r"^[a-z][a-z0-9]{1,10}$")


class InventoryModule(BaseInventoryPlugin):
    NAME = "tenants"

    def verify_file(self, path):
        return os.path.basename(path) in ("tenants.yml", "tenants.yaml") and super().verify_file(
            path
        )

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        base = os.path.dirname(path)
        tenants_dir = os.path.join(base, self.get_option("tenants_dir"))
        if not os.path.isdir(tenants_dir):
            raise AnsibleParserError(f"tenants: directory {tenants_dir} does not exist")
        tenants = [self._load(base, os.path.join(tenants_dir, name))
                   for name in sorted(os.listdir(tenants_dir))
                   if name.endswith((".yml", ".yaml"))]
        self.inventory.set_variable("all", "pbx_tenants", tenants)
        for tenant in tenants:
            self._group(tenant)

    @staticmethod
    def _load(base, path):
        relpath = os.path.relpath(path, base)
        try:
            with open(path, encoding="utf-8") as handle:
                data = yaml.safe_load(handle)
        except (OSError, yaml.YAMLError) as exc:
            raise AnsibleParserError(f"tenants: {relpath}: cannot read YAML: {exc}") from exc
        # A file that is not a mapping is kept as-is for validation to name it.
        tenant = dict(data) if isinstance(data, dict) else {"_content": data}
        tenant["_file"] = relpath
        return tenant

    def _group(self, tenant):
        slug, addresses = tenant.get("slug"), tenant.get("addresses")
        if not (isinstance(slug, str) and _GROUPABLE_SLUG.match(slug)):
            return
        if not isinstance(addresses, dict):
            return
        group = self.inventory.add_group(f"tenant_{slug}")
        for host in addresses:
            if host in self.inventory.hosts:
                self.inventory.add_host(host, group=group)
