"""JSON schemas and keys of the output streams (docs/contracts.md, "Target streams")."""

from __future__ import annotations

from singer_sdk import typing as th

ADDRESS = th.ObjectType(
    *(th.Property(part, th.StringType) for part in
      ("addr1", "addr2", "city", "state", "zip", "country")),
)
CUSTOMER_ADDRESS = th.ObjectType(
    *(th.Property(part, th.StringType) for part in
      ("address1", "address2", "city", "province", "postal_code", "country_code")),
)
MERGE_FIELDS = th.ObjectType(
    *(th.Property(tag, th.StringType) for tag in
      ("FNAME", "LNAME", "COMPANY", "PHONE", "ACCCODE", "RELSTATUS", "COUNTRY")),
    th.Property("ADDRESS", ADDRESS),
    additional_properties=True,
)

OUTPUT_STREAMS: dict[str, tuple[list[str], dict]] = {
    "members": (["email"], th.PropertiesList(
        th.Property("email", th.StringType, required=True),
        th.Property("source_key", th.StringType),
        th.Property("source_updated_at", th.DateTimeType),
        th.Property("status_if_new", th.StringType),
        th.Property("opt_out", th.BooleanType),
        th.Property("merge_fields", MERGE_FIELDS),
        th.Property("language", th.StringType),
    ).to_dict()),
    "tags": (["tag_key"], th.PropertiesList(
        th.Property("tag_key", th.StringType, required=True),
        th.Property("name", th.StringType),
        th.Property("active", th.BooleanType),
    ).to_dict()),
    "member_tags": (["email", "tag_key"], th.PropertiesList(
        th.Property("email", th.StringType, required=True),
        th.Property("tag_key", th.StringType, required=True),
        th.Property("tag_name", th.StringType),
        th.Property("active", th.BooleanType),
        th.Property("source_updated_at", th.DateTimeType),
    ).to_dict()),
    "customers": (["id"], th.PropertiesList(
        th.Property("id", th.StringType, required=True),
        th.Property("email", th.StringType),
        th.Property("opt_in_status", th.BooleanType),
        th.Property("first_name", th.StringType),
        th.Property("last_name", th.StringType),
        th.Property("company", th.StringType),
        th.Property("address", CUSTOMER_ADDRESS),
    ).to_dict()),
    "products": (["id"], th.PropertiesList(
        th.Property("id", th.StringType, required=True),
        th.Property("title", th.StringType),
        th.Property("sku", th.StringType),
        th.Property("price", th.NumberType),
        th.Property("description", th.StringType),
    ).to_dict()),
    "orders": (["id"], th.PropertiesList(
        th.Property("id", th.StringType, required=True),
        th.Property("customer_id", th.StringType),
        th.Property("currency_code", th.StringType),
        th.Property("order_total", th.NumberType),
        th.Property("tax_total", th.NumberType),
        th.Property("discount_total", th.NumberType),
        th.Property("financial_status", th.StringType),
        th.Property("processed_at_foreign", th.DateTimeType),
        th.Property("updated_at_foreign", th.DateTimeType),
        th.Property("lines", th.ArrayType(th.ObjectType(
            th.Property("id", th.StringType),
            th.Property("product_id", th.StringType),
            th.Property("product_variant_id", th.StringType),
            th.Property("quantity", th.IntegerType),
            th.Property("price", th.NumberType),
        ))),
    ).to_dict()),
    "deletions": (["entity", "key"], th.PropertiesList(
        th.Property("entity", th.StringType, required=True),
        th.Property("key", th.StringType, required=True),
        th.Property("deleted_at", th.DateTimeType),
        th.Property("action", th.StringType),
    ).to_dict()),
}
