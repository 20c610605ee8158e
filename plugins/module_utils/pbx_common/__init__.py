"""Shared, Ansible-free helpers for Bulkhead PBX plugins."""
