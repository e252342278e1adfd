"""syncd: keep a NICE CXone outbound calling list in step with Salesforce Leads."""

__version__ = "0.1.0"
