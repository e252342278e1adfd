"""Salesforce: authentication (``auth``) and REST query pages (``client``)."""

from syncd.salesforce.auth import SalesforceAuth, trusted_instance
from syncd.salesforce.client import Page, SalesforceClient

__all__ = ["Page", "SalesforceAuth", "SalesforceClient", "trusted_instance"]
