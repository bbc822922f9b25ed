//! Amazon's own model files as the judge of both sides of the wire. The models are vendored
//! unchanged in `testdata/amazon-models/` (upstream commit and checksums in its README).
//!
//! For each recorded [`Exchange`] (a request and its answer) [`Contract::check`] reports:
//! - on the request (what our client sent): a parameter the operation does not declare, a
//!   required one missing, a value that is not of the declared type, not in its enum, over its
//!   `maxItems`, or not of its `format` (`date-time`), and a repeated parameter (lists are sent
//!   comma-separated, Swagger's default `csv`);
//! - on the response (what the stand-in served): a status the operation does not declare, a body
//!   that does not validate against the declared schema (JSON Schema draft 4, formats checked), a
//!   property the schema does not declare, an `x-amzn-*` header the model does not list for that
//!   status or one it lists that is missing;
//! - the rules a model states in prose that decide what a response holds: `searchOrders` serves
//!   only the data sets `includedData` asked for ([`crate::included`]), `getInventorySummaries`
//!   serves `inventoryDetails` only with `details=true`.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::exchanges::Exchange;
use crate::included::{DataSet, DataSets};

const ORDERS_MODEL: &str = include_str!("../testdata/amazon-models/orders_2026-01-01.json");
const INVENTORY_MODEL: &str = include_str!("../testdata/amazon-models/fbaInventory.json");

/// JSON Schema keywords a Swagger 2.0 parameter may carry (the rest are Swagger's own).
const PARAMETER_KEYWORDS: [&str; 13] = [
    "type",
    "items",
    "enum",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
];

/// The vendored models.
pub struct Contract {
    models: Vec<Value>,
}

/// One operation of a model, found for a request.
struct Operation<'m> {
    model: &'m Value,
    op: &'m Value,
}

impl Default for Contract {
    fn default() -> Self {
        Self::amazon()
    }
}

impl Contract {
    /// Orders v2026-01-01 and FBA Inventory v1, as Amazon publishes them.
    pub fn amazon() -> Self {
        let parse = |text: &str| serde_json::from_str(text).expect("a vendored model is JSON");
        Self {
            models: vec![parse(ORDERS_MODEL), parse(INVENTORY_MODEL)],
        }
    }

    /// Every violation in `exchanges`, each naming its request.
    pub fn check_all(&self, exchanges: &[Exchange]) -> Vec<String> {
        self.each(exchanges, Self::check)
    }

    /// Every violation in what the stand-in served in `exchanges` (the requests are not judged:
    /// for tests that send what Amazon refuses on purpose).
    pub fn served_all(&self, exchanges: &[Exchange]) -> Vec<String> {
        self.each(exchanges, Self::served)
    }

    fn each(&self, exchanges: &[Exchange], check: fn(&Self, &Exchange) -> Vec<String>) -> Vec<String> {
        exchanges
            .iter()
            .flat_map(|exchange| {
                let name = describe(exchange);
                check(self, exchange)
                    .into_iter()
                    .map(move |violation| format!("{name}: {violation}"))
            })
            .collect()
    }

    /// What in `exchange`, request and answer, the models refuse (nothing when it is all as
    /// Amazon documents).
    pub fn check(&self, exchange: &Exchange) -> Vec<String> {
        let mut violations = self.sent(exchange);
        violations.extend(self.served(exchange));
        violations
    }

    /// What in the request of `exchange` (what the client sent) the models refuse.
    pub fn sent(&self, exchange: &Exchange) -> Vec<String> {
        match self.operation(exchange) {
            Some(operation) => request_violations(&operation, exchange),
            None => vec![unknown(exchange)],
        }
    }

    /// What in the answer of `exchange` (what the stand-in served) the models refuse.
    pub fn served(&self, exchange: &Exchange) -> Vec<String> {
        let Some(operation) = self.operation(exchange) else {
            return vec![unknown(exchange)];
        };
        let mut violations = response_violations(&operation, exchange);
        violations.extend(prose_rules(&operation, exchange));
        violations
    }

    fn operation(&self, exchange: &Exchange) -> Option<Operation<'_>> {
        let method = exchange.method.to_ascii_lowercase();
        self.models.iter().find_map(|model| {
            let paths = model["paths"].as_object()?;
            let (_, item) = paths
                .iter()
                .find(|(template, _)| path_matches(template, &exchange.path))?;
            let op = item.get(&method)?;
            Some(Operation { model, op })
        })
    }
}

fn unknown(exchange: &Exchange) -> String {
    format!(
        "{} {} is no operation of the models",
        exchange.method, exchange.path
    )
}

/// `GET /path?query → status`, for messages.
fn describe(exchange: &Exchange) -> String {
    let query: Vec<String> = exchange.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "{} {}?{} → {}",
        exchange.method,
        exchange.path,
        query.join("&"),
        exchange.status
    )
}

/// `/a/{id}/b` matches `/a/x/b`.
fn path_matches(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| t == p || (t.starts_with('{') && t.ends_with('}') && !p.is_empty()))
}

fn request_violations(operation: &Operation<'_>, exchange: &Exchange) -> Vec<String> {
    let declared: Vec<&Value> = operation.op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["in"] == "query")
        .collect();
    let mut violations = Vec::new();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (name, value) in &exchange.query {
        *seen.entry(name).or_default() += 1;
        match declared.iter().find(|p| p["name"] == name.as_str()) {
            Some(parameter) => violations.extend(parameter_violations(parameter, value)),
            None => violations.push(format!(
                "sent parameter `{name}`, which the operation does not declare"
            )),
        }
    }
    for (name, count) in seen.into_iter().filter(|(_, count)| *count > 1) {
        violations.push(format!("sent `{name}` {count} times (lists go comma-separated)"));
    }
    for parameter in declared.iter().filter(|p| p["required"] == true) {
        let name = parameter["name"].as_str().unwrap_or_default();
        if exchange.param(name).is_empty() {
            violations.push(format!("did not send the required parameter `{name}`"));
        }
    }
    violations
}

/// A query value checked against its parameter's declaration.
fn parameter_violations(parameter: &Value, raw: &str) -> Vec<String> {
    let name = parameter["name"].as_str().unwrap_or_default();
    let value = match typed(parameter, raw) {
        Ok(value) => value,
        Err(problem) => return vec![format!("`{name}={raw}`: {problem}")],
    };
    let schema: Map<String, Value> = parameter
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| PARAMETER_KEYWORDS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    schema_errors(&Value::Object(schema), &value)
        .into_iter()
        .map(|error| format!("`{name}={raw}`: {error}"))
        .collect()
}

/// A query string as the JSON value its declared type stands for.
fn typed(parameter: &Value, raw: &str) -> Result<Value, String> {
    let scalar = |declaration: &Value, raw: &str| -> Result<Value, String> {
        match declaration["type"].as_str() {
            Some("integer") => raw
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| "not an integer".to_owned()),
            Some("number") => raw
                .parse::<f64>()
                .map(Value::from)
                .map_err(|_| "not a number".to_owned()),
            Some("boolean") => match raw {
                "true" | "false" => Ok(Value::Bool(raw == "true")),
                _ => Err("not true or false".to_owned()),
            },
            _ => Ok(Value::from(raw)),
        }
    };
    if parameter["type"] == "array" {
        let items = &parameter["items"];
        let values: Result<Vec<Value>, String> = raw.split(',').map(|v| scalar(items, v)).collect();
        return values.map(Value::Array);
    }
    scalar(parameter, raw)
}

fn response_violations(operation: &Operation<'_>, exchange: &Exchange) -> Vec<String> {
    let status = exchange.status.to_string();
    let Some(declared) = operation.op["responses"].get(&status) else {
        return vec![format!("answered {status}, which the operation does not declare")];
    };
    let mut violations = header_violations(declared, exchange);
    if let Some(schema) = declared.get("schema") {
        let root = json!({ "definitions": operation.model["definitions"], "allOf": [schema] });
        violations.extend(schema_errors(&root, &exchange.body));
        undeclared_properties(
            &operation.model["definitions"],
            schema,
            &exchange.body,
            "",
            &mut violations,
        );
    }
    violations
}

/// The `x-amzn-*` headers of the answer against those the model lists for its status.
fn header_violations(declared: &Value, exchange: &Exchange) -> Vec<String> {
    let listed: Vec<String> = declared["headers"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, _)| name.to_ascii_lowercase())
        .collect();
    let missing = listed
        .iter()
        .filter(|name| !exchange.headers.contains_key(*name))
        .map(|name| {
            format!(
                "has no `{name}` header, which the model lists for {}",
                exchange.status
            )
        });
    let extra = exchange
        .headers
        .keys()
        .filter(|name| name.starts_with("x-amzn-") && !listed.contains(name))
        .map(|name| {
            format!(
                "has a `{name}` header, which the model does not list for {}",
                exchange.status
            )
        });
    missing.chain(extra).collect()
}

/// `instance` against a JSON Schema draft 4 document, formats checked.
fn schema_errors(schema: &Value, instance: &Value) -> Vec<String> {
    let validator = match jsonschema::draft4::options()
        .should_validate_formats(true)
        .build(schema)
    {
        Ok(validator) => validator,
        Err(error) => return vec![format!("the model's schema does not compile: {error}")],
    };
    validator
        .iter_errors(instance)
        .map(|error| format!("{error} (at `{}`)", error.instance_path()))
        .collect()
}

/// Properties of `value` that `schema` (resolved through `definitions`) does not declare.
fn undeclared_properties(
    definitions: &Value,
    schema: &Value,
    value: &Value,
    at: &str,
    out: &mut Vec<String>,
) {
    let schema = resolve(definitions, schema);
    match value {
        Value::Object(fields) => {
            let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
                return;
            };
            for (key, field) in fields {
                match properties.get(key) {
                    Some(declared) => {
                        undeclared_properties(definitions, declared, field, &format!("{at}/{key}"), out)
                    }
                    None => out.push(format!("serves `{at}/{key}`, which the model does not declare")),
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = schema.get("items") {
                for (i, element) in items.iter().enumerate() {
                    undeclared_properties(definitions, item, element, &format!("{at}/{i}"), out);
                }
            }
        }
        _ => {}
    }
}

/// A schema with its `$ref`s to `#/definitions/...` followed.
fn resolve<'a>(definitions: &'a Value, schema: &'a Value) -> &'a Value {
    let mut schema = schema;
    while let Some(name) = schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/definitions/"))
    {
        schema = &definitions[name];
    }
    schema
}

/// Rules the models state in prose that decide what a successful answer may hold.
fn prose_rules(operation: &Operation<'_>, exchange: &Exchange) -> Vec<String> {
    if exchange.status != 200 {
        return Vec::new();
    }
    match operation.op["operationId"].as_str() {
        Some("searchOrders") => included_data_violations(exchange),
        Some("getInventorySummaries") => inventory_details_violations(exchange),
        _ => Vec::new(),
    }
}

/// `searchOrders` serves the fields of the data sets `includedData` asked for, no others.
fn included_data_violations(exchange: &Exchange) -> Vec<String> {
    let asked = DataSets::parse(exchange.param("includedData").first().copied()).unwrap_or_default();
    let not_asked: Vec<DataSet> = DataSet::ALL.into_iter().filter(|s| !asked.contains(*s)).collect();
    let mut violations = Vec::new();
    for order in exchange.body["orders"].as_array().into_iter().flatten() {
        let id = order["orderId"].as_str().unwrap_or("?");
        for set in &not_asked {
            let in_order = set.order_field().filter(|f| order.get(*f).is_some());
            let in_item = set.item_field().filter(|f| {
                order["orderItems"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|item| item.get(*f).is_some())
            });
            for field in in_order.into_iter().chain(in_item) {
                violations.push(format!(
                    "order {id} has `{field}` though `includedData` did not ask for {}",
                    set.name()
                ));
            }
        }
    }
    violations
}

/// `getInventorySummaries` serves `inventoryDetails` only when `details=true`.
fn inventory_details_violations(exchange: &Exchange) -> Vec<String> {
    if exchange.param("details").first() == Some(&"true") {
        return Vec::new();
    }
    let summaries = exchange.body["payload"]["inventorySummaries"].as_array();
    let with_details = summaries
        .into_iter()
        .flatten()
        .filter(|s| s.get("inventoryDetails").is_some());
    with_details
        .map(|_| "serves `inventoryDetails` though `details` was not true".to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(query: &[(&str, &str)], status: u16, body: Value) -> Exchange {
        Exchange {
            method: "GET".into(),
            path: "/orders/2026-01-01/orders".into(),
            query: query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            status,
            headers: BTreeMap::from([
                ("x-amzn-requestid".into(), "r".into()),
                ("x-amzn-ratelimit-limit".into(), "0.0056".into()),
            ]),
            body,
        }
    }

    const QUERY: [(&str, &str); 3] = [
        ("marketplaceIds", "ATVPDKIKX0DER"),
        ("createdAfter", "2026-11-01T00:00:00Z"),
        ("includedData", "PROCEEDS,FULFILLMENT"),
    ];

    fn order(extra: Value) -> Value {
        let mut order = json!({
            "orderId": "1", "createdTime": "2026-11-02T00:00:00Z", "lastUpdatedTime": "2026-11-02T00:00:00Z",
            "salesChannel": { "channelName": "AMAZON" }, "orderItems": [],
        });
        order
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        order
    }

    #[test]
    fn a_request_and_answer_as_amazon_documents_them_pass() {
        let body = json!({ "orders": [order(json!({ "proceeds": { "grandTotal": { "currencyCode": "USD", "amount": "1.00" } } }))] });
        assert_eq!(
            Contract::amazon().check(&exchange(&QUERY, 200, body)),
            Vec::<String>::new()
        );
    }

    #[test]
    fn names_enums_types_and_repeats_are_checked_on_the_request() {
        let query = [
            ("marketplaceIds", "ATVPDKIKX0DER"),
            ("createdAfter", "yesterday"),
            ("includedData", "PROCEEDS,EVERYTHING"),
            ("maxResultsPerPage", "ten"),
            ("pageSize", "10"),
            ("marketplaceIds", "A2EUQ1WTGCTBG2"),
        ];
        let violations = Contract::amazon().check(&exchange(&query, 200, json!({ "orders": [] })));
        let text = violations.join("\n");
        for expected in [
            "createdAfter=yesterday",
            "EVERYTHING",
            "maxResultsPerPage=ten",
            "`pageSize`",
            "`marketplaceIds` 2 times",
        ] {
            assert!(text.contains(expected), "{expected} not in:\n{text}");
        }
    }

    #[test]
    fn a_response_is_checked_against_the_schema_the_headers_and_the_data_sets_asked_for() {
        let contract = Contract::amazon();
        let unasked = json!({ "orders": [order(json!({ "buyer": { "buyerName": "x" } }))] });
        assert!(contract.check(&exchange(&QUERY, 200, unasked))[0].contains("BUYER"));
        let invented = json!({ "orders": [order(json!({ "margin": 3 }))] });
        assert!(contract.check(&exchange(&QUERY, 200, invented))[0].contains("`/orders/0/margin`"));
        let null_message = json!({ "errors": [{ "code": "InvalidInput", "message": null }] });
        let mut refused = exchange(&QUERY, 400, null_message);
        assert!(!contract.check(&refused).is_empty(), "message must be a string");
        refused.headers.remove("x-amzn-requestid");
        refused.body = json!({ "errors": [{ "code": "InvalidInput", "message": "m" }] });
        assert_eq!(
            contract.check(&refused).len(),
            1,
            "{:?}",
            contract.check(&refused)
        );
    }
}
