//! Analysis of one seller account's orders and inventory in a time window: pure functions from
//! SP-API data to a typed [`Summary`].
//!
//! Definitions:
//! - orders: every order created in the window; `cancelled_share` = cancelled / orders;
//! - units, revenue and average order value count orders that are not cancelled; revenue is per
//!   currency, in minor units (cents) parsed exactly from Amazon's decimal strings;
//! - top SKUs: by units ordered in non-cancelled orders' items, most first (ties by SKU);
//! - stock-out risk: a SKU with sales whose fulfillable FBA stock covers fewer than
//!   `stockout_days` days at the window's average daily sales.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::spapi::models::{InventorySummary, Order, OrderItem};

/// Parameters of an analysis.
#[derive(Debug, Clone, Copy)]
pub struct AnalysisParams {
    pub stockout_days: u32,
    pub top_skus: usize,
}

/// The data window, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Window {
    fn days(&self) -> f64 {
        ((self.end - self.start).num_seconds() as f64 / 86_400.0).max(1.0 / 24.0)
    }
}

/// Money per currency in minor units (cents).
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

fn is_cancelled(order: &Order) -> bool {
    order.order_status.eq_ignore_ascii_case("Canceled")
        || order.order_status.eq_ignore_ascii_case("Cancelled")
}

/// Parses a decimal amount such as "12.3" or "1234" into minor units (two decimals): 1230, 123400.
/// Amounts with more than two decimals are truncated. `None` for malformed input.
pub fn parse_minor(amount: &str) -> Option<i64> {
    let amount = amount.trim();
    let (negative, digits) = amount
        .strip_prefix('-')
        .map_or((false, amount), |rest| (true, rest));
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole.chars().chain(fraction.chars()).all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let whole: i64 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let cents: i64 = format!("{fraction:0<2}")[..2].parse().ok()?;
    let value = whole.checked_mul(100)?.checked_add(cents)?;
    Some(if negative { -value } else { value })
}

/// The summary of one account. `items` maps order ids to their items.
pub fn analyse(
    window: Window,
    orders: &[Order],
    items: &HashMap<String, Vec<OrderItem>>,
    inventory: &[InventorySummary],
    params: AnalysisParams,
) -> Summary {
    let cancelled_count = orders.iter().filter(|o| is_cancelled(o)).count() as u64;
    let live: Vec<&Order> = orders.iter().filter(|o| !is_cancelled(o)).collect();
    let mut revenue = Amounts::new();
    let mut orders_per_currency: BTreeMap<String, i64> = BTreeMap::new();
    let totals = live.iter().filter_map(|o| o.order_total.as_ref());
    for (currency, minor) in totals.filter_map(|t| Some((&t.currency_code, parse_minor(&t.amount)?))) {
        *revenue.entry(currency.clone()).or_default() += minor;
        *orders_per_currency.entry(currency.clone()).or_default() += 1;
    }
    let average = revenue
        .iter()
        .map(|(currency, total)| (currency.clone(), total / orders_per_currency[currency].max(1)))
        .collect();
    let sku_units = units_by_sku(&live, items);
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
        units: live
            .iter()
            .map(|o| o.number_of_items_shipped + o.number_of_items_unshipped)
            .sum(),
        revenue_minor: revenue,
        average_order_value_minor: average,
        top_skus: top_skus(&sku_units, params.top_skus),
        stockout_risk: stockout_risk(&sku_units, inventory, window.days(), params.stockout_days),
    }
}

fn units_by_sku(live: &[&Order], items: &HashMap<String, Vec<OrderItem>>) -> BTreeMap<String, u64> {
    let mut units = BTreeMap::new();
    for order in live {
        for item in items.get(&order.amazon_order_id).into_iter().flatten() {
            *units.entry(item.seller_sku.clone()).or_default() += item.quantity_ordered;
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
            let sold = *sku_units.get(&stock.seller_sku)?;
            let per_day = sold as f64 / window_days;
            let cover = stock.fulfillable() as f64 / per_day;
            (cover < f64::from(threshold_days)).then(|| StockCover {
                sku: stock.seller_sku.clone(),
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
    use crate::spapi::models::{InventoryDetails, Money};

    fn order(id: &str, status: &str, currency: &str, amount: &str, units: u64) -> Order {
        Order {
            amazon_order_id: id.into(),
            purchase_date: "2026-11-20T10:00:00Z".into(),
            order_status: status.into(),
            order_total: Some(Money {
                currency_code: currency.into(),
                amount: amount.into(),
            }),
            number_of_items_shipped: units,
            number_of_items_unshipped: 0,
        }
    }

    fn item(sku: &str, quantity: u64) -> OrderItem {
        OrderItem {
            seller_sku: sku.into(),
            quantity_ordered: quantity,
        }
    }

    fn stock(sku: &str, fulfillable: u64) -> InventorySummary {
        InventorySummary {
            seller_sku: sku.into(),
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

    #[test]
    fn parses_amounts_exactly() {
        assert_eq!(parse_minor("12.34"), Some(1234));
        assert_eq!(parse_minor("12.3"), Some(1230));
        assert_eq!(parse_minor("1234"), Some(123_400));
        assert_eq!(parse_minor("0.999"), Some(99));
        assert_eq!(parse_minor("-5.50"), Some(-550));
        assert_eq!(parse_minor(".5"), Some(50));
        assert_eq!(parse_minor("abc"), None);
        assert_eq!(parse_minor(""), None);
    }

    #[test]
    fn summarises_a_hand_computed_week() {
        // Three live orders (2 USD, 1 EUR) and one cancelled.
        let orders = vec![
            order("A", "Shipped", "USD", "30.00", 3),
            order("B", "Unshipped", "USD", "10.50", 1),
            order("C", "Shipped", "EUR", "20.00", 2),
            order("D", "Canceled", "USD", "99.99", 5),
        ];
        let items = HashMap::from([
            ("A".to_owned(), vec![item("SKU-1", 2), item("SKU-2", 1)]),
            ("B".to_owned(), vec![item("SKU-2", 1)]),
            ("C".to_owned(), vec![item("SKU-3", 2)]),
            ("D".to_owned(), vec![item("SKU-9", 5)]),
        ]);
        // 7 days: SKU-1 sells 2/7 a day, SKU-2 2/7, SKU-3 2/7.
        let inventory = vec![
            stock("SKU-1", 1),
            stock("SKU-2", 100),
            stock("SKU-3", 3),
            stock("SKU-9", 0),
        ];
        let params = AnalysisParams {
            stockout_days: 14,
            top_skus: 2,
        };
        let s = analyse(week(), &orders, &items, &inventory, params);

        assert_eq!(s.order_count, 4);
        assert_eq!(s.cancelled_count, 1);
        assert!((s.cancelled_share - 0.25).abs() < 1e-9);
        assert_eq!(s.units, 6, "3 + 1 + 2, the cancelled order's 5 excluded");
        assert_eq!(
            s.revenue_minor,
            Amounts::from([("EUR".into(), 2000), ("USD".into(), 4050)])
        );
        assert_eq!(
            s.average_order_value_minor,
            Amounts::from([("EUR".into(), 2000), ("USD".into(), 2025)])
        );
        // Ties at 2 units broken by SKU name; SKU-9 only in a cancelled order.
        assert_eq!(
            s.top_skus,
            vec![
                SkuUnits {
                    sku: "SKU-1".into(),
                    units: 2
                },
                SkuUnits {
                    sku: "SKU-2".into(),
                    units: 2
                }
            ]
        );
        // Cover: SKU-1 1/(2/7) = 3.5 days, SKU-3 3/(2/7) = 10.5 days, SKU-2 350 days (safe).
        let risk: Vec<(&str, f64)> = s
            .stockout_risk
            .iter()
            .map(|c| (c.sku.as_str(), c.days_of_cover))
            .collect();
        assert_eq!(risk, vec![("SKU-1", 3.5), ("SKU-3", 10.5)]);
    }

    #[test]
    fn an_empty_window_is_all_zero() {
        let s = analyse(
            week(),
            &[],
            &HashMap::new(),
            &[stock("X", 0)],
            AnalysisParams {
                stockout_days: 14,
                top_skus: 5,
            },
        );
        assert_eq!((s.order_count, s.units, s.cancelled_share), (0, 0, 0.0));
        assert!(s.revenue_minor.is_empty() && s.top_skus.is_empty() && s.stockout_risk.is_empty());
    }
}
