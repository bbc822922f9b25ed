//! The parts of Amazon's SP-API models we use (Orders v0, FBA Inventory v1, LWA), serde-typed
//! with Amazon's field names.

use serde::Deserialize;

/// LWA token response.
#[derive(Debug, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub expires_in: u64,
}

/// LWA error response (`invalid_grant`, `invalid_client`, ...).
#[derive(Debug, Deserialize)]
pub struct TokenError {
    pub error: String,
    #[serde(default)]
    pub error_description: String,
}

/// SP-API error body: `{"errors": [{"code", "message"}]}`.
#[derive(Debug, Deserialize)]
pub struct ErrorList {
    #[serde(default)]
    pub errors: Vec<ApiError>,
}

#[derive(Debug, Deserialize)]
pub struct ApiError {
    pub code: String,
    #[serde(default)]
    pub message: String,
}

#[derive(Debug, Deserialize)]
pub struct GetOrdersResponse {
    pub payload: OrdersList,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OrdersList {
    #[serde(default)]
    pub orders: Vec<Order>,
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Order {
    pub amazon_order_id: String,
    pub purchase_date: String,
    pub order_status: String,
    pub order_total: Option<Money>,
    #[serde(default)]
    pub number_of_items_shipped: u64,
    #[serde(default)]
    pub number_of_items_unshipped: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Money {
    pub currency_code: String,
    pub amount: String,
}

#[derive(Debug, Deserialize)]
pub struct GetOrderItemsResponse {
    pub payload: OrderItemsList,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OrderItemsList {
    #[serde(default)]
    pub order_items: Vec<OrderItem>,
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OrderItem {
    #[serde(rename = "SellerSKU")]
    pub seller_sku: String,
    pub quantity_ordered: u64,
}

#[derive(Debug, Deserialize)]
pub struct GetInventorySummariesResponse {
    pub payload: InventoryPayload,
    pub pagination: Option<Pagination>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryPayload {
    #[serde(default)]
    pub inventory_summaries: Vec<InventorySummary>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventorySummary {
    pub seller_sku: String,
    pub inventory_details: Option<InventoryDetails>,
    #[serde(default)]
    pub total_quantity: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryDetails {
    #[serde(default)]
    pub fulfillable_quantity: u64,
}

impl InventorySummary {
    pub fn fulfillable(&self) -> u64 {
        self.inventory_details
            .as_ref()
            .map_or(0, |d| d.fulfillable_quantity)
    }
}
