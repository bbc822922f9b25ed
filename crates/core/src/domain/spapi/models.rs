//! The parts of Amazon's SP-API models we use, serde-typed with Amazon's field names: Orders
//! v2026-01-01 `searchOrders` (`models/orders-api-model/orders_2026-01-01.json`), FBA Inventory v1
//! (`models/fba-inventory-api-model/fbaInventory.json`), the error list, and LWA.
//!
//! Only what the models mark required is required here; everything else is optional or defaults,
//! so one order without a total or one item without a SKU cannot fail a whole account.

use serde::{Deserialize, Serialize};

/// The `includedData` sets every `searchOrders` page asks for: exactly those whose fields
/// [`Order`] reads (`fulfillment` is FULFILLMENT, `proceeds` is PROCEEDS; the rest of an order is
/// its basic information, served without asking). Without them Amazon sends basic information
/// only, and cancelled orders and revenue go unseen. A field read from a set not listed here fails
/// `tests/it/contract.rs` (an order served with every set must read the same as one served with
/// these).
pub const ORDER_DATA_SETS: [&str; 2] = ["PROCEEDS", "FULFILLMENT"];

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
    pub error_description: Option<String>,
}

/// SP-API error body: `{"errors": [{"code", "message", "details"}]}`. The inventory model
/// requires only `code`; `message` is read as optional so a null or missing one cannot hide the
/// error's code.
#[derive(Debug, Deserialize)]
pub struct ErrorList {
    #[serde(default)]
    pub errors: Vec<ApiError>,
}

#[derive(Debug, Deserialize)]
pub struct ApiError {
    pub code: String,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub details: Option<String>,
}

impl std::fmt::Display for ApiError {
    /// `code: message (details)`, leaving out what is empty.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(message) = self.message.as_deref().filter(|m| !m.is_empty()) {
            write!(f, ": {message}")?;
        }
        if let Some(details) = self.details.as_deref().filter(|d| !d.is_empty()) {
            write!(f, " ({details})")?;
        }
        Ok(())
    }
}

/// `searchOrders` response: `orders` is required, `pagination` only while more pages follow.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchOrdersResponse {
    #[serde(default)]
    pub orders: Vec<Order>,
    pub pagination: Option<Pagination>,
}

/// An Orders v2026-01-01 order with its items embedded. Required by the model: `orderId`,
/// `createdTime`, `lastUpdatedTime`, `salesChannel`, `orderItems`. `fulfillment` comes with the
/// FULFILLMENT data set and `proceeds` with PROCEEDS ([`ORDER_DATA_SETS`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    pub order_id: String,
    pub created_time: String,
    pub last_updated_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fulfillment: Option<OrderFulfillment>,
    /// Absent while an order is pending (no payment authorized yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proceeds: Option<OrderProceeds>,
    #[serde(default)]
    pub order_items: Vec<OrderItem>,
}

impl Order {
    /// `fulfillmentStatus` (`PENDING`, `UNSHIPPED`, `SHIPPED`, `CANCELLED`, ...), if given.
    pub fn status(&self) -> Option<&str> {
        self.fulfillment.as_ref().map(|f| f.fulfillment_status.as_str())
    }

    pub fn is_cancelled(&self) -> bool {
        self.status()
            .is_some_and(|s| s.eq_ignore_ascii_case("CANCELLED") || s.eq_ignore_ascii_case("CANCELED"))
    }

    /// What the seller receives for the order, once Amazon states it.
    pub fn total(&self) -> Option<&Money> {
        self.proceeds.as_ref()?.grand_total.as_ref()
    }

    /// Units ordered over all items.
    pub fn units(&self) -> u64 {
        self.order_items
            .iter()
            .fold(0u64, |sum, i| sum.saturating_add(i.quantity_ordered))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderFulfillment {
    pub fulfillment_status: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderProceeds {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grand_total: Option<Money>,
}

/// `Money`: a decimal string and an ISO 4217 currency code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Money {
    pub currency_code: String,
    pub amount: String,
}

/// An order item: `quantityOrdered` and `product` are required, the SKU inside is not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderItem {
    pub quantity_ordered: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<ItemProduct>,
}

impl OrderItem {
    pub fn seller_sku(&self) -> Option<&str> {
        self.product.as_ref()?.seller_sku.as_deref()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemProduct {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seller_sku: Option<String>,
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

/// One SKU's FBA inventory; the model requires none of its fields.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventorySummary {
    #[serde(default)]
    pub seller_sku: Option<String>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_with_a_null_or_missing_message_keeps_its_code_and_details() {
        let list: ErrorList = serde_json::from_str(
            r#"{"errors":[{"code":"InvalidInput","message":null,"details":"bad date"},{"code":"Unauthorized"}]}"#,
        )
        .unwrap();
        assert_eq!(list.errors[0].to_string(), "InvalidInput (bad date)");
        assert_eq!(list.errors[1].to_string(), "Unauthorized");
    }
}
