//! Seller data: deterministic by default (the same seller, marketplace, order and instant always
//! give the same answer), or seeded by a test through `POST /_sim/orders` so that a test knows
//! every figure the analysis should come to.
//!
//! Orders live through Amazon's statuses over time (`orders_2026-01-01.json`
//! `FulfillmentStatus`): `PENDING` for a few minutes after purchase (no `proceeds` yet: Amazon
//! states them once payment is authorized), then `UNSHIPPED`, then `SHIPPED` a few hours later, or
//! `CANCELLED` instead. `lastUpdatedTime` is the latest of those transitions, so `lastUpdatedAfter`
//! filters see real changes. Prices are in the marketplace's own currency.

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::included::{DataSet, DataSets};
use crate::marketplaces::Marketplace;

/// FNV-1a: a stable hash, so data does not change between builds or runs.
pub fn hash(parts: &[&str]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325_u64;
    for part in parts {
        for b in part.bytes().chain([0xff]) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// splitmix64: a small, good PRNG for deterministic streams.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
}

/// Digits after the decimal point of a currency's minor unit (ISO 4217): JPY has none, every
/// other currency of Amazon's marketplaces has two.
pub fn minor_digits(currency: &str) -> u32 {
    match currency {
        "JPY" | "KRW" | "CLP" | "VND" | "ISK" | "HUF" => 0,
        "BHD" | "KWD" | "OMR" | "JOD" | "TND" => 3,
        _ => 2,
    }
}

/// Amazon's decimal string of `minor` units of `currency`: 1234 USD is "12.34", 1234 JPY "1234".
pub fn amount(minor: u64, currency: &str) -> String {
    let digits = minor_digits(currency);
    if digits == 0 {
        return minor.to_string();
    }
    let scale = 10_u64.pow(digits);
    format!(
        "{}.{:0width$}",
        minor / scale,
        minor % scale,
        width = digits as usize
    )
}

fn money(minor: u64, currency: &str) -> Value {
    json!({ "currencyCode": currency, "amount": amount(minor, currency) })
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Number of distinct SKUs a generated seller has.
const SKUS: u64 = 12;
/// One generated item in this many has no seller SKU (optional in the model).
const ITEMS_PER_MISSING_SKU: u64 = 16;
/// The longest an order keeps changing after purchase (its last transition is earlier).
pub const LIFECYCLE: Duration = Duration::hours(30);

pub fn sku(seller: &str, n: u64) -> String {
    format!("SKU-{:04X}-{n:02}", hash(&[seller]) & 0xffff)
}

/// Where an order is in its life at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Unshipped,
    Shipped,
    Cancelled,
}

impl Status {
    /// The model's `FulfillmentStatus` value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Unshipped => "UNSHIPPED",
            Self::Shipped => "SHIPPED",
            Self::Cancelled => "CANCELLED",
        }
    }
}

/// One order of a seller in one marketplace.
#[derive(Debug, Clone)]
pub struct Order {
    pub id: String,
    pub purchased: DateTime<Utc>,
    /// Payment authorized: `PENDING` ends here (never, when `None`).
    pub authorized: Option<DateTime<Utc>>,
    /// Shipped (or, for a cancelled order, cancelled) at this time (never, when `None`).
    pub settled: Option<DateTime<Utc>>,
    pub cancelled: bool,
    pub currency: String,
    pub items: Vec<OrderItem>,
}

#[derive(Debug, Clone)]
pub struct OrderItem {
    pub id: String,
    /// `None` for an item without a seller SKU.
    pub sku: Option<String>,
    pub quantity: u64,
    /// Unit price in the order currency's minor unit.
    pub price_minor: u64,
}

impl Order {
    pub fn status(&self, at: DateTime<Utc>) -> Status {
        match self.authorized {
            Some(authorized) if at >= authorized => {}
            _ => return Status::Pending,
        }
        match self.settled {
            _ if self.cancelled => Status::Cancelled,
            Some(settled) if at >= settled => Status::Shipped,
            _ => Status::Unshipped,
        }
    }

    /// The latest transition at or before `at`.
    pub fn last_updated(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        match self.status(at) {
            Status::Pending => self.purchased,
            Status::Cancelled | Status::Unshipped => self.authorized.unwrap_or(self.purchased),
            Status::Shipped => self.settled.unwrap_or(self.purchased),
        }
    }

    pub fn units(&self) -> u64 {
        self.items.iter().map(|i| i.quantity).sum()
    }

    /// What the seller receives: every item's price times its quantity.
    pub fn amount_minor(&self) -> u64 {
        self.items.iter().map(|i| i.price_minor * i.quantity).sum()
    }
}

/// Generated orders of `seller` in `marketplace` created in `[from, to]` (both included, as
/// Amazon's "at or after" and "at or before"), oldest first: each day brings between 3/4 and
/// 5/4 of `per_day` orders, so a week's count is predictable within a few percent.
pub fn orders(
    seller: &str,
    marketplace: &Marketplace,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    per_day: u64,
) -> Vec<Order> {
    let mut out = Vec::new();
    let first_day = from.timestamp().div_euclid(86_400);
    let last_day = to.timestamp().div_euclid(86_400);
    for day in first_day..=last_day {
        let mut rng = Rng::new(hash(&[seller, marketplace.id, &day.to_string()]));
        let count = per_day * 3 / 4 + rng.below(per_day / 2 + 1);
        for index in 0..count {
            let purchased = Utc
                .timestamp_opt(day * 86_400 + rng.below(86_400) as i64, 0)
                .single()
                .expect("valid time");
            let order = generated(seller, marketplace, day, index, purchased, &mut rng);
            if (from..=to).contains(&purchased) {
                out.push(order);
            }
        }
    }
    out.sort_by_key(|o| (o.purchased, o.id.clone()));
    out
}

fn generated(
    seller: &str,
    marketplace: &Marketplace,
    day: i64,
    index: u64,
    purchased: DateTime<Utc>,
    rng: &mut Rng,
) -> Order {
    let cancelled = rng.below(10) == 0;
    let authorized = purchased + Duration::minutes(5 + rng.below(30) as i64);
    let settled = authorized + Duration::hours(1 + rng.below(24) as i64);
    let id = format!(
        "{:03}-{day:07}-{:07}",
        hash(&[seller, marketplace.id]) % 1000,
        index
    );
    Order {
        items: generated_items(seller, &id),
        id,
        purchased,
        authorized: Some(authorized),
        settled: Some(settled),
        cancelled,
        currency: marketplace.currency.to_owned(),
    }
}

/// The items of a generated order, derived from the seller and order id.
fn generated_items(seller: &str, order_id: &str) -> Vec<OrderItem> {
    let mut rng = Rng::new(hash(&[seller, order_id, "items"]));
    (0..=rng.below(3))
        .map(|i| {
            let n = rng.below(SKUS);
            let has_sku = rng.below(ITEMS_PER_MISSING_SKU) != 0;
            OrderItem {
                id: format!("{:014}", hash(&[order_id, &i.to_string()]) % 100_000_000_000_000),
                sku: has_sku.then(|| sku(seller, n)),
                quantity: 1 + rng.below(3),
                price_minor: 500 + hash(&[seller, &n.to_string()]) % 9500,
            }
        })
        .collect()
}

fn asin(sku: &str) -> String {
    format!("B0{:08X}", hash(&[sku]) & 0xffff_ffff)
}

/// An Orders v2026-01-01 `Order` as of `at`, with the basic information and the fields of the
/// data sets in `sets` only: no `proceeds` while `PENDING`, item cancellation details only for a
/// cancelled order.
pub fn order_json(order: &Order, marketplace: &str, at: DateTime<Utc>, sets: DataSets) -> Value {
    let status = order.status(at);
    let items: Vec<Value> = order
        .items
        .iter()
        .map(|item| item_json(order, item, status, sets))
        .collect();
    let mut json = json!({
        "orderId": order.id,
        "createdTime": iso(order.purchased),
        "lastUpdatedTime": iso(order.last_updated(at)),
        "salesChannel": { "channelName": "AMAZON", "marketplaceId": marketplace },
        "orderItems": items,
    });
    for set in DataSet::ALL.into_iter().filter(|s| sets.contains(*s)) {
        if let (Some(field), Some(value)) = (set.order_field(), order_set(order, set, status)) {
            json[field] = value;
        }
    }
    json
}

/// An order's fields of one data set, if it has any.
fn order_set(order: &Order, set: DataSet, status: Status) -> Option<Value> {
    match set {
        DataSet::Buyer => Some(json!({ "buyerName": format!("Buyer {}", &order.id[order.id.len() - 3..]) })),
        DataSet::Recipient => Some(json!({ "deliveryAddress": { "city": "Seattle", "countryCode": "US" } })),
        DataSet::Proceeds if status != Status::Pending => Some(json!({
            "grandTotal": money(order.amount_minor(), &order.currency),
        })),
        DataSet::Fulfillment => Some(json!({ "fulfillmentStatus": status.name(), "fulfilledBy": "AMAZON" })),
        DataSet::Tax => Some(json!({ "taxInvoicing": { "invoiceStatus": "NOT_REQUIRED" } })),
        DataSet::Payment if status != Status::Pending => Some(json!({
            "paymentExecutions": [{ "paymentMethod": "CARD", "paymentAmount": money(order.amount_minor(), &order.currency) }],
        })),
        // Amazon-fulfilled orders have no packages (merchant-fulfilled only) and no fulfillment
        // orders (EasyShip only).
        _ => None,
    }
}

fn item_json(order: &Order, item: &OrderItem, status: Status, sets: DataSets) -> Value {
    let mut product = json!({
        "asin": asin(item.sku.as_deref().unwrap_or(&item.id)),
        "price": { "unitPrice": money(item.price_minor, &order.currency) },
    });
    if let Some(sku) = &item.sku {
        product["sellerSku"] = json!(sku);
    }
    let mut json = json!({
        "orderItemId": item.id,
        "quantityOrdered": item.quantity,
        "product": product,
    });
    for set in DataSet::ALL.into_iter().filter(|s| sets.contains(*s)) {
        if let (Some(field), Some(value)) = (set.item_field(), item_set(order, item, set, status)) {
            json[field] = value;
        }
    }
    json
}

/// An item's fields of one data set, if it has any.
fn item_set(order: &Order, item: &OrderItem, set: DataSet, status: Status) -> Option<Value> {
    let shipped = if status == Status::Shipped {
        item.quantity
    } else {
        0
    };
    match set {
        DataSet::Proceeds if status != Status::Pending => Some(json!({
            "proceedsTotal": money(item.price_minor * item.quantity, &order.currency),
        })),
        DataSet::Expense => Some(json!({})),
        DataSet::Promotion => Some(json!({ "breakdowns": [] })),
        DataSet::Cancellation if status == Status::Cancelled => Some(json!({
            "cancellationExecution": { "cancelledBy": "BUYER", "cancelReason": "NO_LONGER_NEEDED" },
        })),
        DataSet::Fulfillment => Some(json!({
            "quantityFulfilled": shipped,
            "quantityUnfulfilled": item.quantity - shipped,
        })),
        DataSet::Tax => Some(
            json!({ "taxCollections": [{ "model": "MarketplaceFacilitator", "responsibleParty": "Amazon Services, Inc." }] }),
        ),
        _ => None,
    }
}

/// FBA inventory of every SKU of a generated seller in a marketplace: SKU and fulfillable units.
pub fn inventory(seller: &str, marketplace: &str) -> Vec<(String, u64)> {
    (0..SKUS)
        .map(|n| {
            let sku = sku(seller, n);
            let fulfillable = hash(&[seller, marketplace, &sku, "stock"]) % 60;
            (sku, fulfillable)
        })
        .collect()
}

/// An FBA `InventorySummary`; `inventoryDetails` only when the request asked for `details`
/// (`fbaInventory.json`: "This object will not appear if the details parameter in the request
/// is false").
pub fn inventory_json(sku: &str, fulfillable: u64, details: bool) -> Value {
    let mut json = json!({
        "asin": asin(sku),
        "fnSku": format!("X00{:07X}", hash(&[sku, "fn"]) & 0xfff_ffff),
        "sellerSku": sku,
        "condition": "NewItem",
        "totalQuantity": fulfillable + hash(&[sku, "inbound"]) % 5,
    });
    if details {
        json["inventoryDetails"] = json!({ "fulfillableQuantity": fulfillable });
    }
    json
}

/// A seller's data as a test seeds it (`POST /_sim/orders`): these orders and this inventory
/// replace the generated ones for that seller and marketplace.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeededSeller {
    pub seller: String,
    pub marketplace: String,
    #[serde(default)]
    pub orders: Vec<SeededOrder>,
    #[serde(default)]
    pub inventory: Vec<SeededStock>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeededOrder {
    pub order_id: String,
    pub created_time: DateTime<Utc>,
    /// `PENDING`, `UNSHIPPED`, `SHIPPED` or `CANCELLED`; the order has been in it since it was
    /// created.
    pub status: String,
    /// Defaults to the marketplace's currency.
    #[serde(default)]
    pub currency_code: Option<String>,
    pub items: Vec<SeededItem>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeededItem {
    #[serde(default)]
    pub seller_sku: Option<String>,
    pub quantity: u64,
    /// Unit price as Amazon writes amounts ("12.34"; "1500" in JPY).
    pub unit_price: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeededStock {
    pub seller_sku: String,
    pub fulfillable: u64,
}

impl SeededOrder {
    /// The order as the stand-in keeps it; an error names what is wrong with the seed.
    pub fn to_order(&self, marketplace: &Marketplace) -> Result<Order, String> {
        let currency = self.currency_code.as_deref().unwrap_or(marketplace.currency);
        let created = Some(self.created_time);
        let (authorized, settled, cancelled) = match self.status.as_str() {
            "PENDING" => (None, None, false),
            "UNSHIPPED" => (created, None, false),
            "SHIPPED" => (created, created, false),
            "CANCELLED" => (created, created, true),
            other => return Err(format!("unknown status {other:?}")),
        };
        let items = self
            .items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                Ok(OrderItem {
                    id: format!("{}-{i}", self.order_id),
                    sku: item.seller_sku.clone(),
                    quantity: item.quantity,
                    price_minor: parse_minor(&item.unit_price, minor_digits(currency))
                        .ok_or_else(|| format!("unit price {:?} is not an amount", item.unit_price))?,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Order {
            id: self.order_id.clone(),
            purchased: self.created_time,
            authorized,
            settled,
            cancelled,
            currency: currency.to_owned(),
            items,
        })
    }
}

/// "12.34" with two digits is 1234; "1500" with none is 1500.
fn parse_minor(amount: &str, digits: u32) -> Option<u64> {
    let (whole, fraction) = amount.split_once('.').unwrap_or((amount, ""));
    if fraction.len() > digits as usize {
        return None;
    }
    let padded = format!("{fraction:0<width$}", width = digits as usize);
    let whole: u64 = whole.parse().ok()?;
    let fraction: u64 = if digits == 0 { 0 } else { padded.parse().ok()? };
    whole.checked_mul(10_u64.pow(digits))?.checked_add(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::marketplaces;

    fn us() -> &'static Marketplace {
        marketplaces::find("ATVPDKIKX0DER").unwrap()
    }

    #[test]
    fn the_same_seller_and_window_give_the_same_orders() {
        let to = Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap();
        let from = to - Duration::days(7);
        let a = orders("SELLER1", us(), from, to, 3);
        let b = orders("SELLER1", us(), from, to, 3);
        assert_eq!(
            a.iter().map(|o| &o.id).collect::<Vec<_>>(),
            b.iter().map(|o| &o.id).collect::<Vec<_>>()
        );
        assert!(!a.is_empty());
        assert!(a.iter().all(|o| o.purchased >= from && o.purchased <= to));
        let other = orders("SELLER2", us(), from, to, 3);
        assert!(
            other.iter().all(|o| a.iter().all(|mine| mine.id != o.id)),
            "sellers have their own orders"
        );
    }

    #[test]
    fn orders_move_through_their_statuses_and_show_only_the_sets_asked_for() {
        let t = Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap();
        let all = orders("LIFE", us(), t - Duration::days(7), t, 20);
        let order = all.iter().find(|o| !o.cancelled).expect("a live order");
        let (authorized, settled) = (order.authorized.unwrap(), order.settled.unwrap());
        assert_eq!(order.status(order.purchased), Status::Pending);
        assert_eq!(order.status(authorized), Status::Unshipped);
        assert_eq!(order.status(settled), Status::Shipped);
        assert_eq!(order.last_updated(settled + LIFECYCLE), settled);

        let sets = DataSets::parse(Some("PROCEEDS,FULFILLMENT")).unwrap();
        let pending = order_json(order, us().id, order.purchased, sets);
        assert!(pending.get("proceeds").is_none(), "no proceeds while pending");
        let shipped = order_json(order, us().id, settled, sets);
        assert_eq!(shipped["proceeds"]["grandTotal"]["currencyCode"], "USD");
        assert_eq!(shipped["fulfillment"]["fulfillmentStatus"], "SHIPPED");
        let basic = order_json(order, us().id, settled, DataSets::default());
        for field in ["proceeds", "fulfillment", "buyer"] {
            assert!(basic.get(field).is_none(), "{field} without its data set");
        }
        assert!(all.iter().any(|o| o.cancelled), "some are cancelled");
        let items: Vec<_> = all.iter().flat_map(|o| &o.items).collect();
        assert!(items.iter().any(|i| i.sku.is_none()), "some items have no SKU");
    }

    #[test]
    fn amounts_use_the_currency_minor_unit() {
        assert_eq!(amount(1234, "USD"), "12.34");
        assert_eq!(amount(5, "EUR"), "0.05");
        assert_eq!(amount(1234, "JPY"), "1234");
        assert_eq!(amount(1234, "KWD"), "1.234");
        assert_eq!(parse_minor("12.3", 2), Some(1230));
        assert_eq!(parse_minor("1500", 0), Some(1500));
        assert_eq!(parse_minor("1.234", 2), None);
    }
}
