//! Property tests: whatever Amazon (or something in between) sends, parsing and analysing it
//! never panics, and sums never wrap.

use chrono::{TimeDelta, Utc};
use proptest::prelude::*;
use sellersync_core::domain::analysis::{self, AnalysisParams, Window};
use sellersync_core::domain::spapi::models::{
    ErrorList, GetInventorySummariesResponse, InventorySummary, Order, SearchOrdersResponse,
};

fn window() -> Window {
    let end = Utc::now();
    Window {
        start: end - TimeDelta::days(7),
        end,
    }
}

/// An order as JSON with adversarial values where Amazon's schema allows any.
fn order_json() -> impl Strategy<Value = serde_json::Value> {
    (
        "[a-zA-Z0-9-]{0,12}",
        prop_oneof![Just("USD".to_owned()), Just("JPY".to_owned()), Just("KWD".to_owned()), "[A-Z]{0,4}"],
        prop_oneof![
            "-?[0-9]{0,25}(\\.[0-9]{0,25})?",
            Just("9223372036854775807".to_owned()),
            Just("-9223372036854775808".to_owned()),
            ".{0,10}"
        ],
        prop::collection::vec((any::<u64>(), prop::option::of("[a-z]{0,3}")), 0..5),
        prop_oneof![Just("SHIPPED"), Just("CANCELLED"), Just("PENDING"), Just("")],
    )
        .prop_map(|(id, currency, amount, items, status)| {
            let items: Vec<serde_json::Value> = items
                .into_iter()
                .map(|(quantity, sku)| {
                    serde_json::json!({ "quantityOrdered": quantity, "product": { "sellerSku": sku } })
                })
                .collect();
            serde_json::json!({
                "orderId": id, "createdTime": "2026-11-20T10:00:00Z", "lastUpdatedTime": "2026-11-20T10:00:00Z",
                "fulfillment": { "fulfillmentStatus": status },
                "proceeds": { "grandTotal": { "currencyCode": currency, "amount": amount } },
                "orderItems": items,
            })
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_bytes_decode_to_a_response_or_an_error_never_a_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = serde_json::from_slice::<SearchOrdersResponse>(&body);
        let _ = serde_json::from_slice::<GetInventorySummariesResponse>(&body);
        let _ = serde_json::from_slice::<ErrorList>(&body);
    }

    #[test]
    fn any_orders_are_analysed_without_a_panic(orders in prop::collection::vec(order_json(), 0..20), stock in any::<u64>()) {
        let orders: Vec<Order> = orders
            .into_iter()
            .filter_map(|o| serde_json::from_value(o).ok())
            .collect();
        let inventory: Vec<InventorySummary> = serde_json::from_value(serde_json::json!([
            { "sellerSku": "a", "totalQuantity": stock, "inventoryDetails": { "fulfillableQuantity": stock } }
        ])).unwrap();
        let params = AnalysisParams { stockout_days: 14, top_skus: 5 };
        let summary = analysis::analyse(window(), &orders, &inventory, params);
        prop_assert!(summary.order_count as usize == orders.len());
        prop_assert!(summary.cancelled_share >= 0.0 && summary.cancelled_share <= 1.0);
    }

    #[test]
    fn any_amount_text_parses_to_minor_units_or_nothing(amount in ".{0,40}", digits in 0u32..4) {
        let _ = analysis::parse_minor(&amount, digits);
    }
}
