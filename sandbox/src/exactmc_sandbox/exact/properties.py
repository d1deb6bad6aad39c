"""Every documented property of the entities the sandbox serves, selectable with `$select`.

Real clients `$select` properties this project never reads (Accounts `AccountManager`,
SalesInvoices `Salesperson`, ...). Exact accepts every documented property, so the sandbox does
too and answers null where it keeps no data; an unknown property still gets 400. Source: the
models generated from Exact's REST API reference in picqer/exact-php-client (one class per
entity, its `$fillable` names; models of 2025-12).
"""

from __future__ import annotations

# crm/Accounts, bulk/CRM/Accounts (sync/CRM/Accounts adds Timestamp)
ACCOUNT_PROPERTIES: tuple[str, ...] = (
    "ID", "Accountant", "AccountManager", "AccountManagerFullName", "AccountManagerHID",
    "ActivitySector", "ActivitySubSector", "AddressLine1", "AddressLine2", "AddressLine3",
    "AutomaticProcessProposedEntry", "BankAccounts", "Blocked", "BSN", "BusinessType",
    "CanDropShip", "ChamberOfCommerce", "City", "Classification1", "Classification2",
    "Classification3", "Classification4", "Classification5", "Classification6", "Classification7",
    "Classification8", "Code", "CodeAtSupplier", "CompanySize", "ConsolidationScenario",
    "ControlledDate", "Country", "CountryName", "Created", "Creator", "CreatorFullName",
    "CreditLinePurchase", "CreditLineSales", "CustomField", "DatevCreditorCode", "DatevDebtorCode",
    "DeliveryAdvice", "DiscountPurchase", "DiscountSales", "Division", "Email",
    "EnableSalesPaymentLink", "EndDate", "EORINumber", "EstablishedDate", "Fax",
    "GLAccountPurchase", "GLAccountSales", "GLAP", "GLAR", "GlnNumber", "HasWithholdingTaxSales",
    "IgnoreDatevWarningMessage", "IncotermAddressPurchase", "IncotermAddressSales",
    "IncotermCodePurchase", "IncotermCodeSales", "IncotermVersionPurchase", "IncotermVersionSales",
    "IntraStatArea", "IntraStatDeliveryTerm", "IntraStatSystem", "IntraStatTransactionA",
    "IntraStatTransactionB", "IntraStatTransportMethod", "InvoiceAccount", "InvoiceAccountCode",
    "InvoiceAccountName", "InvoiceAttachmentType", "InvoicingMethod", "IsAccountant", "IsAgency",
    "IsAnonymised", "IsCompetitor", "IsExtraDuty", "IsMailing", "IsPilot", "IsReseller", "IsSales",
    "IsSupplier", "Language", "LanguageDescription", "Latitude", "LeadPurpose", "LeadSource",
    "Logo", "LogoFileName", "LogoThumbnailUrl", "LogoUrl", "Longitude", "MainContact", "Modified",
    "Modifier", "ModifierFullName", "Name", "OINNumber", "Parent", "PayAsYouEarn",
    "PaymentConditionPurchase", "PaymentConditionPurchaseDescription", "PaymentConditionSales",
    "PaymentConditionSalesDescription", "PeppolIdentifier", "PeppolIdentifierType", "Phone",
    "PhoneExtension", "Postcode", "PriceList", "PurchaseCurrency", "PurchaseCurrencyDescription",
    "PurchaseLeadDays", "PurchaseVATCode", "PurchaseVATCodeDescription", "RecepientOfCommissions",
    "Remarks", "Reseller", "ResellerCode", "ResellerName", "RSIN", "SalesCurrency",
    "SalesCurrencyDescription", "SalesVATCode", "SalesVATCodeDescription", "SearchCode",
    "SecurityLevel", "SeparateInvPerSubscription", "ShippingLeadDays", "ShippingMethod",
    "ShowRemarkForSales", "StartDate", "State", "StateName", "Status", "TradeName", "Type",
    "UniqueTaxpayerReference", "VATLiability", "VATNumber", "Website",
)
# crm/Contacts, bulk/CRM/Contacts (sync/CRM/Contacts adds Timestamp)
CONTACT_PROPERTIES: tuple[str, ...] = (
    "ID", "Account", "AccountIsCustomer", "AccountIsSupplier", "AccountMainContact", "AccountName",
    "AddressLine2", "AddressStreet", "AddressStreetNumber", "AddressStreetNumberSuffix",
    "BirthDate", "BirthPlace", "BusinessEmail", "BusinessFax", "BusinessMobile", "BusinessPhone",
    "BusinessPhoneExtension", "City", "Code", "Country", "Created", "Creator", "CreatorFullName",
    "CustomField", "Division", "Email", "EndDate", "FirstName", "FullName", "Gender", "HID",
    "IdentificationDate", "IdentificationDocument", "IdentificationUser", "Initials",
    "IsAnonymised", "IsMailingExcluded", "IsMainContact", "JobTitleDescription", "Language",
    "LastName", "LeadPurpose", "LeadSource", "MarketingNotes", "MiddleName", "Mobile", "Modified",
    "Modifier", "ModifierFullName", "Nationality", "Notes", "PartnerName", "PartnerNamePrefix",
    "Person", "Phone", "PhoneExtension", "Picture", "PictureName", "PictureThumbnailUrl",
    "PictureUrl", "Postcode", "SocialSecurityNumber", "StartDate", "State", "Title",
    "TitleAbbreviation", "TitleDescription",
)
# salesinvoice/SalesInvoices, bulk/SalesInvoice/SalesInvoices
SALES_INVOICE_PROPERTIES: tuple[str, ...] = (
    "InvoiceID", "AmountDC", "AmountDiscount", "AmountDiscountExclVat", "AmountFC",
    "AmountFCExclVat", "Created", "Creator", "CreatorFullName", "Currency", "DeliverTo",
    "DeliverToAddress", "DeliverToContactPerson", "DeliverToContactPersonFullName",
    "DeliverToName", "Description", "Discount", "DiscountType", "Division", "Document",
    "DocumentNumber", "DocumentSubject", "DueDate", "ExtraDutyAmountFC", "GAccountAmountFC",
    "IncotermAddress", "IncotermCode", "IncotermVersion", "InvoiceDate", "InvoiceNumber",
    "InvoiceTo", "InvoiceToContactPerson", "InvoiceToContactPersonFullName", "InvoiceToName",
    "IsExtraDuty", "Journal", "JournalDescription", "Modified", "Modifier", "ModifierFullName",
    "OrderDate", "OrderedBy", "OrderedByContactPerson", "OrderedByContactPersonFullName",
    "OrderedByName", "OrderNumber", "PaymentCondition", "PaymentConditionDescription",
    "PaymentReference", "Remarks", "SalesChannel", "SalesChannelCode", "SalesChannelDescription",
    "SalesInvoiceLines", "SalesInvoiceOrderChargeLines", "Salesperson", "SalespersonFullName",
    "SelectionCode", "SelectionCodeCode", "SelectionCodeDescription", "ShippingMethod",
    "ShippingMethodCode", "ShippingMethodDescription", "StarterSalesInvoiceStatus",
    "StarterSalesInvoiceStatusDescription", "Status", "StatusDescription", "Type",
    "TypeDescription", "VATAmountDC", "VATAmountFC", "Warehouse", "WithholdingTaxAmountFC",
    "WithholdingTaxBaseAmount", "WithholdingTaxPercentage", "YourRef",
)
# bulk/SalesInvoice/SalesInvoiceLines
SALES_INVOICE_LINE_PROPERTIES: tuple[str, ...] = (
    "ID", "AmountDC", "AmountFC", "CostCenter", "CostCenterDescription", "CostUnit",
    "CostUnitDescription", "CustomerItemCode", "CustomField", "DeliveryDate", "Description",
    "Discount", "Division", "Employee", "EmployeeFullName", "EndTime", "ExtraDutyAmountFC",
    "ExtraDutyPercentage", "GLAccount", "GLAccountDescription", "InvoiceID", "Item", "ItemCode",
    "ItemDescription", "LineNumber", "NetPrice", "Notes", "Pricelist", "PricelistDescription",
    "Project", "ProjectDescription", "ProjectWBS", "ProjectWBSDescription", "Quantity",
    "SalesOrder", "SalesOrderLine", "SalesOrderLineNumber", "SalesOrderNumber", "StartTime",
    "Subscription", "SubscriptionDescription", "UnitCode", "UnitDescription", "UnitPrice",
    "VATAmountDC", "VATAmountFC", "VATCode", "VATCodeDescription", "VATPercentage",
)
# sync/SalesInvoice/SalesInvoices: header and line rows in one shape
SYNC_SALES_INVOICE_PROPERTIES: tuple[str, ...] = (
    "Timestamp", "AmountDC", "AmountDiscount", "AmountDiscountExclVat", "AmountFC",
    "AmountFCExclVat", "CostCenter", "CostCenterDescription", "CostUnit", "CostUnitDescription",
    "Created", "Creator", "CreatorFullName", "Currency", "CustomerItemCode", "CustomField",
    "DeliverTo", "DeliverToAddress", "DeliverToContactPerson", "DeliverToContactPersonFullName",
    "DeliverToName", "DeliveryDate", "Description", "Discount", "DiscountType", "Division",
    "Document", "DocumentNumber", "DocumentSubject", "DueDate", "Employee", "EmployeeFullName",
    "EndTime", "ExtraDutyAmountFC", "ExtraDutyPercentage", "GAccountAmountFC", "GLAccount",
    "GLAccountDescription", "ID", "IncotermAddress", "IncotermCode", "IncotermVersion",
    "InvoiceDate", "InvoiceID", "InvoiceNumber", "InvoiceTo", "InvoiceToContactPerson",
    "InvoiceToContactPersonFullName", "InvoiceToName", "IsExtraDuty", "Item", "ItemCode",
    "ItemDescription", "Journal", "JournalDescription", "LineNumber", "Modified", "Modifier",
    "ModifierFullName", "NetPrice", "Notes", "OrderDate", "OrderedBy", "OrderedByContactPerson",
    "OrderedByContactPersonFullName", "OrderedByName", "OrderNumber", "PaymentCondition",
    "PaymentConditionDescription", "PaymentReference", "Pricelist", "PricelistDescription",
    "Project", "ProjectDescription", "ProjectWBS", "ProjectWBSDescription", "Quantity", "Remarks",
    "SalesChannel", "SalesChannelCode", "SalesChannelDescription", "SalesOrder", "SalesOrderLine",
    "SalesOrderLineNumber", "SalesOrderNumber", "Salesperson", "SalespersonFullName",
    "StarterSalesInvoiceStatus", "StarterSalesInvoiceStatusDescription", "StartTime", "Status",
    "StatusDescription", "Subscription", "SubscriptionDescription", "Type", "TypeDescription",
    "UnitCode", "UnitDescription", "UnitPrice", "VATAmountDC", "VATAmountFC", "VATCode",
    "VATCodeDescription", "VATPercentage", "Warehouse", "WithholdingTaxAmountFC",
    "WithholdingTaxBaseAmount", "WithholdingTaxPercentage", "YourRef",
)
# hrm/Costcenters
COSTCENTER_PROPERTIES: tuple[str, ...] = (
    "ID", "Code", "Created", "Creator", "CreatorFullName", "CustomField", "Description",
    "Division", "EndDate", "Modified", "Modifier", "ModifierFullName",
)
# logistics/Items
ITEM_PROPERTIES: tuple[str, ...] = (
    "ID", "AverageCost", "Barcode", "Class_01", "Class_02", "Class_03", "Class_04", "Class_05",
    "Class_06", "Class_07", "Class_08", "Class_09", "Class_10", "Code", "CopyRemarks",
    "CostPriceCurrency", "CostPriceNew", "CostPriceStandard", "Created", "Creator",
    "CreatorFullName", "CustomField", "Description", "Division", "EndDate", "ExtraDescription",
    "FreeBoolField_01", "FreeBoolField_02", "FreeBoolField_03", "FreeBoolField_04",
    "FreeBoolField_05", "FreeDateField_01", "FreeDateField_02", "FreeDateField_03",
    "FreeDateField_04", "FreeDateField_05", "FreeNumberField_01", "FreeNumberField_02",
    "FreeNumberField_03", "FreeNumberField_04", "FreeNumberField_05", "FreeNumberField_06",
    "FreeNumberField_07", "FreeNumberField_08", "FreeTextField_01", "FreeTextField_02",
    "FreeTextField_03", "FreeTextField_04", "FreeTextField_05", "FreeTextField_06",
    "FreeTextField_07", "FreeTextField_08", "FreeTextField_09", "FreeTextField_10", "GLCosts",
    "GLCostsCode", "GLCostsDescription", "GLRevenue", "GLRevenueCode", "GLRevenueDescription",
    "GLStock", "GLStockCode", "GLStockDescription", "GrossWeight", "IsBatchItem",
    "IsFractionAllowedItem", "IsMakeItem", "IsNewContract", "IsOnDemandItem", "IsPackageItem",
    "IsPurchaseItem", "IsSalesItem", "IsSerialItem", "IsStockItem", "IsSubcontractedItem",
    "IsTaxableItem", "IsTime", "IsWebshopItem", "ItemGroup", "ItemGroupCode",
    "ItemGroupDescription", "Modified", "Modifier", "ModifierFullName", "NetWeight",
    "NetWeightUnit", "Notes", "Picture", "PictureName", "PictureThumbnailUrl", "PictureUrl",
    "SalesVatCode", "SalesVatCodeDescription", "SearchCode", "SecurityLevel", "StandardSalesPrice",
    "StartDate", "StatisticalCode", "StatisticalNetWeight", "StatisticalUnits", "StatisticalValue",
    "Stock", "Unit", "UnitDescription", "UnitType",
)
# bulk/Cashflow/Receivables
RECEIVABLE_PROPERTIES: tuple[str, ...] = (
    "ID", "Account", "AccountBankAccountID", "AccountBankAccountNumber", "AccountCode",
    "AccountContact", "AccountContactName", "AccountCountry", "AccountName", "AmountDC",
    "AmountDiscountDC", "AmountDiscountFC", "AmountFC", "BankAccountID", "BankAccountNumber",
    "CashflowTransactionBatchCode", "Created", "Creator", "CreatorFullName", "Currency",
    "Description", "DirectDebitMandate", "DirectDebitMandateDescription",
    "DirectDebitMandatePaymentType", "DirectDebitMandateReference", "DirectDebitMandateType",
    "DiscountDueDate", "Division", "Document", "DocumentNumber", "DocumentSubject", "DueDate",
    "EndDate", "EndPeriod", "EndToEndID", "EndYear", "EntryDate", "EntryID", "EntryNumber",
    "GLAccount", "GLAccountCode", "GLAccountDescription", "InvoiceDate", "InvoiceNumber",
    "IsBatchBooking", "IsFullyPaid", "Journal", "JournalDescription", "LastPaymentDate",
    "Modified", "Modifier", "ModifierFullName", "OrderNumber", "PaymentCondition",
    "PaymentConditionDescription", "PaymentDays", "PaymentDaysDiscount",
    "PaymentDiscountPercentage", "PaymentInformationID", "PaymentMethod", "PaymentReference",
    "RateFC", "ReceivableBatchNumber", "ReceivableSelected", "ReceivableSelector",
    "ReceivableSelectorFullName", "Source", "Status", "TransactionAmountDC", "TransactionAmountFC",
    "TransactionDueDate", "TransactionEntryID", "TransactionID", "TransactionIsReversal",
    "TransactionReportingPeriod", "TransactionReportingYear", "TransactionStatus",
    "TransactionType", "YourRef",
)
# sync/Deleted
SYNC_DELETED_PROPERTIES: tuple[str, ...] = (
    "Timestamp", "DeletedBy", "DeletedDate", "Division", "EntityKey", "EntityType", "ID",
)
# system/Divisions
SYSTEM_DIVISION_PROPERTIES: tuple[str, ...] = (
    "Code", "AddressLine1", "AddressLine2", "AddressLine3", "ArchiveDate", "BlockingStatus",
    "BusinessTypeCode", "BusinessTypeDescription", "ChamberOfCommerceEstablishment",
    "ChamberOfCommerceNumber", "City", "Class_01", "Class_02", "Class_03", "Class_04", "Class_05",
    "CompanySizeCode", "CompanySizeDescription", "Country", "Created", "Creator",
    "CreatorFullName", "Currency", "Current", "Customer", "CustomerCode", "CustomerName",
    "DatevAccountantNumber", "DatevClientNumber", "Description", "DivisionHRLinkUnlinkDate",
    "DivisionMoveDate", "Email", "Fax", "Hid", "IsDossierDivision", "IsHRDivision",
    "IsMainDivision", "IsPracticeDivision", "Legislation", "Modified", "Modifier",
    "ModifierFullName", "OBNumber", "Phone", "Postcode", "SbiCode", "SbiDescription", "SectorCode",
    "SectorDescription", "ShareCapital", "SiretNumber", "StartDate", "State", "Status",
    "SubsectorCode", "SubsectorDescription", "TaxOfficeNumber", "TaxReferenceNumber",
    "TemplateCode", "VATNumber", "Website",
)
# current/Me
ME_PROPERTIES: tuple[str, ...] = (
    "UserID", "AccountingDivision", "CurrentDivision", "CustomerCode", "DivisionCustomer",
    "DivisionCustomerCode", "DivisionCustomerName", "DivisionCustomerSiretNumber",
    "DivisionCustomerVatNumber", "DossierDivision", "Email", "EmployeeID", "FirstName", "FullName",
    "Gender", "Initials", "IsClientUser", "IsEmployeeSelfServiceUser", "IsMyFirmLiteUser",
    "IsMyFirmPortalUser", "IsOEIMigrationMandatory", "IsStarterUser", "Language", "LanguageCode",
    "LastName", "Legislation", "MiddleName", "Mobile", "Nationality", "PackageCode", "Phone",
    "PhoneExtension", "PictureUrl", "ServerTime", "ServerUtcOffset", "ThumbnailPicture",
    "ThumbnailPictureFormat", "Title", "UserName",
)
