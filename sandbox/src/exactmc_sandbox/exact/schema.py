"""Field lists of the simulated entities (Exact's own PascalCase names)."""

from __future__ import annotations

ACCOUNT_FIELDS = (
    "ID", "Code", "Name", "Email", "Phone", "Website", "AddressLine1", "AddressLine2",
    "AddressLine3", "City", "Postcode", "State", "Country", "CountryName", "Language", "Status",
    "Blocked", "IsSales", "Type", "VATNumber", "Created", "Modified", "Division",
)
CONTACT_FIELDS = (
    "ID", "Account", "AccountName", "FirstName", "MiddleName", "LastName", "FullName", "Email",
    "BusinessEmail", "Phone", "Mobile", "IsMailingExcluded", "IsMainContact", "Language",
    "Created", "Modified", "Division",
)
INVOICE_FIELDS = (
    "InvoiceID", "InvoiceNumber", "InvoiceTo", "InvoiceToName", "OrderedBy", "OrderedByName",
    "DeliverTo", "AmountDC", "AmountFC", "AmountFCExclVat", "VATAmountFC", "VATAmountDC",
    "Currency", "InvoiceDate", "DueDate", "Status", "Type", "Description", "YourRef",
    "Created", "Modified", "Division",
)
INVOICE_LINE_FIELDS = (
    "ID", "InvoiceID", "LineNumber", "Item", "ItemCode", "ItemDescription", "Quantity",
    "UnitPrice", "AmountFC", "AmountDC", "VATAmountFC", "CostCenter", "CostCenterDescription",
    "Description", "Division",
)
COSTCENTER_FIELDS = ("ID", "Code", "Description", "Active", "Created", "Modified", "Division")
ITEM_FIELDS = (
    "ID", "Code", "Description", "IsSalesItem", "StandardSalesPrice", "Unit", "Created",
    "Modified", "Division",
)
RECEIVABLE_FIELDS = (
    "ID", "Account", "AccountCode", "AccountName", "InvoiceNumber", "EntryNumber", "AmountDC",
    "TransactionAmountDC", "Currency", "IsFullyPaid", "LastPaymentDate", "Status", "Description",
    "InvoiceDate", "DueDate", "Created", "Modified", "Division",
)
DELETED_FIELDS = (
    "ID", "EntityKey", "EntityType", "DeletedBy", "DeletedDate", "Division", "Timestamp",
)
# The sync invoice feed: header (LineNumber 0) and lines in one row shape.
INVOICE_FEED_FIELDS = tuple(
    dict.fromkeys(("ID", *INVOICE_FIELDS, *INVOICE_LINE_FIELDS, "Timestamp"))
)

ENTITY_FIELDS: dict[str, tuple[str, ...]] = {
    "Accounts": ACCOUNT_FIELDS,
    "Contacts": CONTACT_FIELDS,
    "SalesInvoices": INVOICE_FIELDS,
    "Costcenters": COSTCENTER_FIELDS,
    "Items": ITEM_FIELDS,
    "Receivables": RECEIVABLE_FIELDS,
}
ENTITY_KEY = {name: ("InvoiceID" if name == "SalesInvoices" else "ID") for name in ENTITY_FIELDS}

# EntityType codes written to sync/Deleted. Costcenters and Receivables have none documented,
# so their deletions leave no trace there (sandbox choice).
DELETED_ENTITY_TYPES = {"Accounts": 2, "Contacts": 5, "SalesInvoices": 13, "Items": 9}

# Fields the simulator computes itself; a create/update may not set them.
READ_ONLY_FIELDS = {"ID", "InvoiceID", "Created", "Modified", "Timestamp", "Division"}

ACCOUNT_STATUSES = {"A", "S", "P", "C"}
INVOICE_TYPES = {8020, 8021, 8023, 8024}
INVOICE_STATUSES = {10, 20, 50}
# Receivable Status: 20 open, 30 paid (unconfirmed codes; sandbox choice).
RECEIVABLE_OPEN, RECEIVABLE_PAID = 20, 30

COUNTRY_NAMES = {
    "NL": "Netherlands", "BE": "Belgium", "DE": "Germany", "FR": "France", "GB": "United Kingdom",
    "US": "United States", "ES": "Spain",
}
