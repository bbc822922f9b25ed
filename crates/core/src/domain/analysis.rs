//! Analysis of one seller account's orders and inventory in a time window: pure functions from
//! SP-API data to a typed [`Summary`].
//!
//! Definitions:
//! - orders: every order created in the window (both ends included); `cancelled_share` =
//!   cancelled / orders;
//! - units, revenue and average order value count orders that are not cancelled; revenue is per
//!   currency, in that currency's minor unit (ISO 4217: cents for USD, yen for JPY, fils for
//!   KWD), parsed exactly from Amazon's decimal strings; orders without a total yet (pending) add
//!   units but no revenue, and are left out of the average;
//! - top SKUs: by units ordered in non-cancelled orders' items, most first (ties by SKU); items
//!   without a SKU count towards units only;
//! - stock-out risk: a SKU with sales whose fulfillable FBA stock covers fewer than
//!   `stockout_days` days at the window's average daily sales. When the inventory could not be
//!   read, the summary says so (`inventory_unavailable`) and lists no risks.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::spapi::models::{InventorySummary, Order};

/// Parameters of an analysis.
#[derive(Debug, Clone, Copy)]
pub struct AnalysisParams {
    pub stockout_days: u32,
    pub top_skus: usize,
}

/// The data window, `[start, end]`: both ends included, as Amazon's `createdAfter` ("at or
/// after") and `createdBefore` ("at or before") are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Window {
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t <= self.end
    }

    fn days(&self) -> f64 {
        ((self.end - self.start).num_seconds() as f64 / 86_400.0).max(1.0 / 24.0)
    }
}

/// Money per currency in the currency's minor unit.
pub type Amounts = BTreeMap<String, i64>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub window: Window,
    pub order_count: u64,
    pub cancelled_count: u64,
    pub cancelled_share: f64,
    pub units: u64,
    pub revenue_minor: Amounts,
    pub average_order_value_minor: Amounts,
    pub top_skus: Vec<SkuUnits>,
    pub stockout_risk: Vec<StockCover>,
    /// Why the inventory is missing from this summary (e.g. the seller did not grant the
    /// inventory role); `None` when it was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory_unavailable: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SkuUnits {
    pub sku: String,
    pub units: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StockCover {
    pub sku: String,
    pub fulfillable: u64,
    pub units_per_day: f64,
    pub days_of_cover: f64,
}

/// Digits of a currency's minor unit (ISO 4217). Amazon's marketplaces trade in 2-digit
/// currencies except JPY; the others listed are here so a new marketplace cannot be off by 100.
pub fn minor_unit_digits(currency: &str) -> u32 {
    match currency {
        "JPY" | "KRW" | "CLP" | "VND" | "ISK" | "HUF" | "XOF" | "XAF" | "UGX" | "PYG" => 0,
        "BHD" | "KWD" | "OMR" | "JOD" | "TND" | "LYD" | "IQD" => 3,
        _ => 2,
    }
}

/// Parses a decimal amount such as "12.3" or "1234" into minor units with `digits` decimals:
/// with 2, 1230 and 123400; with 0 ("JPY"), "1234" is 1234. Extra decimals are truncated.
/// `None` for malformed input.
pub fn parse_minor(amount: &str, digits: u32) -> Option<i64> {
    let amount = amount.trim();
    let (negative, number) = amount
        .strip_prefix('-')
        .map_or((false, amount), |rest| (true, rest));
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole.chars().chain(fraction.chars()).all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let whole: i64 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let width = digits as usize;
    let fraction: String = fraction
        .chars()
        .chain(std::iter::repeat('0'))
        .take(width)
        .collect();
    let fraction: i64 = if width == 0 { 0 } else { fraction.parse().ok()? };
    let value = whole
        .checked_mul(10_i64.checked_pow(digits)?)?
        .checked_add(fraction)?;
    Some(if negative { value.saturating_neg() } else { value })
}

/// The summary of one account's orders (items embedded) and inventory.
pub fn analyse(
    window: Window,
    orders: &[Order],
    inventory: &[InventorySummary],
    params: AnalysisParams,
) -> Summary {
    let cancelled_count = orders.iter().filter(|o| o.is_cancelled()).count() as u64;
    let live: Vec<&Order> = orders.iter().filter(|o| !o.is_cancelled()).collect();
    let (revenue, average) = revenue(&live);
    let sku_units = units_by_sku(&live);
    let order_count = orders.len() as u64;
    Summary {
        window,
        order_count,
        cancelled_count,
        cancelled_share: if order_count == 0 {
            0.0
        } else {
            cancelled_count as f64 / order_count as f64
        },
        units: live.iter().fold(0u64, |sum, o| sum.saturating_add(o.units())),
        revenue_minor: revenue,
        average_order_value_minor: average,
        top_skus: top_skus(&sku_units, params.top_skus),
        stockout_risk: stockout_risk(&sku_units, inventory, window.days(), params.stockout_days),
        inventory_unavailable: None,
    }
}

/// Revenue and average order value per currency, of the orders that state a total.
fn revenue(live: &[&Order]) -> (Amounts, Amounts) {
    let mut revenue = Amounts::new();
    let mut orders_per_currency: BTreeMap<String, i64> = BTreeMap::new();
    for total in live.iter().filter_map(|o| o.total()) {
        let Some(minor) = parse_minor(&total.amount, minor_unit_digits(&total.currency_code)) else {
            continue;
        };
        // Saturating: amounts come from outside; an absurd one must not wrap or panic.
        let sum = revenue.entry(total.currency_code.clone()).or_default();
        *sum = sum.saturating_add(minor);
        *orders_per_currency
            .entry(total.currency_code.clone())
            .or_default() += 1;
    }
    let average = revenue
        .iter()
        .map(|(currency, total)| (currency.clone(), total / orders_per_currency[currency].max(1)))
        .collect();
    (revenue, average)
}

fn units_by_sku(live: &[&Order]) -> BTreeMap<String, u64> {
    let mut units = BTreeMap::new();
    for item in live.iter().flat_map(|o| &o.order_items) {
        if let Some(sku) = item.seller_sku() {
            let sum = units.entry(sku.to_owned()).or_default();
            *sum = u64::saturating_add(*sum, item.quantity_ordered);
        }
    }
    units
}

fn top_skus(sku_units: &BTreeMap<String, u64>, n: usize) -> Vec<SkuUnits> {
    let mut ranked: Vec<SkuUnits> = sku_units
        .iter()
        .map(|(sku, units)| SkuUnits {
            sku: sku.clone(),
            units: *units,
        })
        .collect();
    ranked.sort_by(|a, b| b.units.cmp(&a.units).then_with(|| a.sku.cmp(&b.sku)));
    ranked.truncate(n);
    ranked
}

fn stockout_risk(
    sku_units: &BTreeMap<String, u64>,
    inventory: &[InventorySummary],
    window_days: f64,
    threshold_days: u32,
) -> Vec<StockCover> {
    let mut at_risk: Vec<StockCover> = inventory
        .iter()
        .filter_map(|stock| {
            let sku = stock.seller_sku.as_ref()?;
            let sold = *sku_units.get(sku)?;
            let per_day = sold as f64 / window_days;
            let cover = stock.fulfillable() as f64 / per_day;
            (cover < f64::from(threshold_days)).then(|| StockCover {
                sku: sku.clone(),
                fulfillable: stock.fulfillable(),
                units_per_day: (per_day * 100.0).round() / 100.0,
                days_of_cover: (cover * 10.0).round() / 10.0,
            })
        })
        .collect();
    at_risk.sort_by(|a, b| {
        a.days_of_cover
            .total_cmp(&b.days_of_cover)
            .then_with(|| a.sku.cmp(&b.sku))
    });
    at_risk
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::spapi::models::{
        InventoryDetails, ItemProduct, Money, OrderFulfillment, OrderItem, OrderProceeds,
    };

    fn item(sku: Option<&str>, quantity: u64) -> OrderItem {
        OrderItem {
            quantity_ordered: quantity,
            product: Some(ItemProduct {
                seller_sku: sku.map(str::to_owned),
            }),
        }
    }

    fn order(id: &str, status: &str, total: Option<(&str, &str)>, items: Vec<OrderItem>) -> Order {
        Order {
            order_id: id.into(),
            created_time: "2026-11-20T10:00:00Z".into(),
            last_updated_time: "2026-11-20T11:00:00Z".into(),
            fulfillment: Some(OrderFulfillment {
                fulfillment_status: status.into(),
            }),
            proceeds: total.map(|(currency, amount)| OrderProceeds {
                grand_total: Some(Money {
                    currency_code: currency.into(),
                    amount: amount.into(),
                }),
            }),
            order_items: items,
        }
    }

    fn stock(sku: &str, fulfillable: u64) -> InventorySummary {
        InventorySummary {
            seller_sku: Some(sku.into()),
            inventory_details: Some(InventoryDetails {
                fulfillable_quantity: fulfillable,
            }),
            total_quantity: fulfillable,
        }
    }

    fn week() -> Window {
        let end = Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap();
        Window {
            start: end - chrono::Duration::days(7),
            end,
        }
    }

    const PARAMS: AnalysisParams = AnalysisParams {
        stockout_days: 14,
        top_skus: 2,
    };

    #[test]
    fn parses_amounts_exactly_in_each_currency_minor_unit() {
        assert_eq!(parse_minor("12.34", 2), Some(1234));
        assert_eq!(parse_minor("12.3", 2), Some(1230));
        assert_eq!(parse_minor("1234", 2), Some(123_400));
        assert_eq!(parse_minor("0.999", 2), Some(99));
        assert_eq!(parse_minor("-5.50", 2), Some(-550));
        assert_eq!(parse_minor(".5", 2), Some(50));
        assert_eq!(parse_minor("1234", 0), Some(1234), "JPY has no minor unit");
        assert_eq!(parse_minor("1234.00", 0), Some(1234));
        assert_eq!(parse_minor("1.5", 3), Some(1500), "KWD has three decimals");
        assert_eq!(parse_minor("abc", 2), None);
        assert_eq!(parse_minor("", 2), None);
        assert_eq!(minor_unit_digits("JPY"), 0);
        assert_eq!(minor_unit_digits("EUR"), 2);
    }

    #[test]
    fn summarises_a_hand_computed_week() {
        // Three live orders (2 USD, 1 EUR), one pending without a total, one cancelled.
        let orders = vec![
            order(
                "A",
                "SHIPPED",
                Some(("USD", "30.00")),
                vec![item(Some("SKU-1"), 2), item(Some("SKU-2"), 1)],
            ),
            order(
                "B",
                "UNSHIPPED",
                Some(("USD", "10.50")),
                vec![item(Some("SKU-2"), 1)],
            ),
            order(
                "C",
                "SHIPPED",
                Some(("EUR", "20.00")),
                vec![item(Some("SKU-3"), 2)],
            ),
            order("P", "PENDING", None, vec![item(None, 1)]),
            order(
                "D",
                "CANCELLED",
                Some(("USD", "99.99")),
                vec![item(Some("SKU-9"), 5)],
            ),
        ];
        // 7 days: SKU-1 sells 2/7 a day, SKU-2 2/7, SKU-3 2/7.
        let inventory = vec![
            stock("SKU-1", 1),
            stock("SKU-2", 100),
            stock("SKU-3", 3),
            stock("SKU-9", 0),
        ];
        let s = analyse(week(), &orders, &inventory, PARAMS);

        assert_eq!(s.order_count, 5);
        assert_eq!(s.cancelled_count, 1);
        assert!((s.cancelled_share - 0.2).abs() < 1e-9);
        assert_eq!(
            s.units, 7,
            "3 + 1 + 2 + 1 pending, the cancelled order's 5 excluded"
        );
        assert_eq!(
            s.revenue_minor,
            Amounts::from([("EUR".into(), 2000), ("USD".into(), 4050)])
        );
        assert_eq!(
            s.average_order_value_minor,
            Amounts::from([("EUR".into(), 2000), ("USD".into(), 2025)]),
            "the pending order has no total yet and is not averaged"
        );
        // Ties at 2 units broken by SKU name; SKU-9 only in a cancelled order.
        let top: Vec<(&str, u64)> = s.top_skus.iter().map(|t| (t.sku.as_str(), t.units)).collect();
        assert_eq!(top, vec![("SKU-1", 2), ("SKU-2", 2)]);
        // Cover: SKU-1 1/(2/7) = 3.5 days, SKU-3 3/(2/7) = 10.5 days, SKU-2 350 days (safe).
        let risk: Vec<(&str, f64)> = s
            .stockout_risk
            .iter()
            .map(|c| (c.sku.as_str(), c.days_of_cover))
            .collect();
        assert_eq!(risk, vec![("SKU-1", 3.5), ("SKU-3", 10.5)]);
        assert_eq!(s.inventory_unavailable, None);
    }

    #[test]
    fn yen_are_not_scaled_by_a_hundred() {
        let orders = vec![
            order("J1", "SHIPPED", Some(("JPY", "1500")), vec![item(Some("A"), 1)]),
            order("J2", "SHIPPED", Some(("JPY", "2500")), vec![item(Some("A"), 1)]),
        ];
        let s = analyse(week(), &orders, &[], PARAMS);
        assert_eq!(s.revenue_minor, Amounts::from([("JPY".into(), 4000)]));
        assert_eq!(s.average_order_value_minor, Amounts::from([("JPY".into(), 2000)]));
    }

    #[test]
    fn an_empty_window_is_all_zero() {
        let s = analyse(week(), &[], &[stock("X", 0)], PARAMS);
        assert_eq!((s.order_count, s.units, s.cancelled_share), (0, 0, 0.0));
        assert!(s.revenue_minor.is_empty() && s.top_skus.is_empty() && s.stockout_risk.is_empty());
    }
}
