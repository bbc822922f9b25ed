//! Deterministic seller data: the same seller, marketplace, order and instant always give the
//! same answer.
//!
//! Orders live through Amazon's statuses over time (`ordersV0.json` `OrderStatus`,
//! `orders_2026-01-01.json` `FulfillmentStatus`): Pending for a few minutes after purchase (no
//! `OrderTotal` / `proceeds` yet: Amazon fills them once payment is authorized), then Unshipped,
//! then Shipped a few hours later, or Canceled instead. `LastUpdateDate` is the latest of those
//! transitions, so `LastUpdatedAfter` filters see real changes.

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};

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

/// Currency of a marketplace id (Amazon's public ids; unknown ones trade in USD).
pub fn currency(marketplace: &str) -> &'static str {
    match marketplace {
        "A1PA6795UKMFR9" | "A13V1IB3VIYZZH" | "APJ6JRA9NG5V4" | "A1RKKUPIHCS9HS" | "A1805IZSGTT6HS" => "EUR",
        "A1F83G8C2ARO7P" => "GBP",
        "A1VC38T7YXB528" => "JPY",
        "A2EUQ1WTGCTBG2" => "CAD",
        _ => "USD",
    }
}

/// Digits after the decimal point of a currency's minor unit (ISO 4217): JPY has none.
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

fn money(minor: u64, currency: &str, v0: bool) -> Value {
    if v0 {
        json!({ "CurrencyCode": currency, "Amount": amount(minor, currency) })
    } else {
        json!({ "currencyCode": currency, "amount": amount(minor, currency) })
    }
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Number of distinct SKUs a seller has.
const SKUS: u64 = 12;
/// One item in this many has no SellerSKU (optional in both Orders models).
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
    Canceled,
}

impl Status {
    pub fn v0(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Unshipped => "Unshipped",
            Self::Shipped => "Shipped",
            Self::Canceled => "Canceled",
        }
    }
    pub fn v2026(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Unshipped => "UNSHIPPED",
            Self::Shipped => "SHIPPED",
            Self::Canceled => "CANCELLED",
        }
    }
}

/// One order of `seller`: its id encodes seller, day and index so items can be derived from it.
#[derive(Debug, Clone)]
pub struct Order {
    pub id: String,
    pub seller: String,
    pub purchased: DateTime<Utc>,
    /// Payment authorized: Pending ends here.
    pub authorized: DateTime<Utc>,
    /// Shipped (or, for a cancelled order, Canceled) at this time.
    pub settled: DateTime<Utc>,
    pub cancelled: bool,
    pub amount_minor: u64,
    pub units: u64,
}

impl Order {
    pub fn status(&self, at: DateTime<Utc>) -> Status {
        match () {
            _ if at < self.authorized => Status::Pending,
            _ if self.cancelled => Status::Canceled,
            _ if at < self.settled => Status::Unshipped,
            _ => Status::Shipped,
        }
    }

    /// The latest transition at or before `at`.
    pub fn last_updated(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        match self.status(at) {
            Status::Pending => self.purchased,
            Status::Canceled | Status::Unshipped => self.authorized,
            Status::Shipped => self.settled,
        }
    }

    pub fn items(&self) -> Vec<OrderItem> {
        order_items(&self.seller, &self.id)
    }
}

/// Orders of `seller` in `marketplace` created in [from, to), oldest first: each day brings
/// between 3/4 and 5/4 of `per_day` orders, so a week's count is predictable within a few percent.
pub fn orders(
    seller: &str,
    marketplace: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    per_day: u64,
) -> Vec<Order> {
    let mut out = Vec::new();
    let first_day = from.timestamp().div_euclid(86_400);
    let last_day = to.timestamp().div_euclid(86_400);
    for day in first_day..=last_day {
        let mut rng = Rng::new(hash(&[seller, marketplace, &day.to_string()]));
        let count = per_day * 3 / 4 + rng.below(per_day / 2 + 1);
        for index in 0..count {
            let purchased = Utc
                .timestamp_opt(day * 86_400 + rng.below(86_400) as i64, 0)
                .single()
                .expect("valid time");
            let order = order(seller, marketplace, day, index, purchased, &mut rng);
            if purchased >= from && purchased < to {
                out.push(order);
            }
        }
    }
    out.sort_by_key(|o| (o.purchased, o.id.clone()));
    out
}

fn order(
    seller: &str,
    marketplace: &str,
    day: i64,
    index: u64,
    purchased: DateTime<Utc>,
    rng: &mut Rng,
) -> Order {
    let cancelled = rng.below(10) == 0;
    let authorized = purchased + Duration::minutes(5 + rng.below(30) as i64);
    let settled = authorized + Duration::hours(1 + rng.below(24) as i64);
    let id = format!("{:03}-{day:07}-{:07}", hash(&[seller, marketplace]) % 1000, index);
    let items = order_items(seller, &id);
    Order {
        amount_minor: items.iter().map(|i| i.price_minor * i.quantity).sum(),
        units: items.iter().map(|i| i.quantity).sum(),
        id,
        seller: seller.to_owned(),
        purchased,
        authorized,
        settled,
        cancelled,
    }
}

#[derive(Debug, Clone)]
pub struct OrderItem {
    pub id: String,
    /// `None` for the occasional item without a SellerSKU.
    pub sku: Option<String>,
    pub quantity: u64,
    /// Unit price in the marketplace currency's minor unit.
    pub price_minor: u64,
}

/// The items of an order, derived from the seller and order id.
pub fn order_items(seller: &str, order_id: &str) -> Vec<OrderItem> {
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

/// An Orders v0 `Order` as of `at`: no `OrderTotal` while Pending.
pub fn order_v0(order: &Order, marketplace: &str, at: DateTime<Utc>) -> Value {
    let status = order.status(at);
    let shipped = if status == Status::Shipped { order.units } else { 0 };
    let mut json = json!({
        "AmazonOrderId": order.id,
        "PurchaseDate": iso(order.purchased),
        "LastUpdateDate": iso(order.last_updated(at)),
        "OrderStatus": status.v0(),
        "MarketplaceId": marketplace,
        "NumberOfItemsShipped": shipped,
        "NumberOfItemsUnshipped": order.units - shipped,
    });
    if status != Status::Pending {
        json["OrderTotal"] = money(order.amount_minor, currency(marketplace), true);
    }
    json
}

/// An Orders v0 `OrderItem`: `SellerSKU` is left out when the item has none.
pub fn order_item_v0(item: &OrderItem, marketplace: &str) -> Value {
    let currency = currency(marketplace);
    let mut json = json!({
        "ASIN": asin(item.sku.as_deref().unwrap_or(&item.id)),
        "OrderItemId": item.id,
        "QuantityOrdered": item.quantity,
        "ItemPrice": money(item.price_minor * item.quantity, currency, true),
    });
    if let Some(sku) = &item.sku {
        json["SellerSKU"] = json!(sku);
    }
    json
}

/// An Orders v2026-01-01 `Order` as of `at`, items embedded; no `proceeds` while Pending.
pub fn order_v2026(order: &Order, marketplace: &str, at: DateTime<Utc>) -> Value {
    let status = order.status(at);
    let currency = currency(marketplace);
    let items: Vec<Value> = order
        .items()
        .iter()
        .map(|item| item_v2026(item, currency, status))
        .collect();
    let mut json = json!({
        "orderId": order.id,
        "createdTime": iso(order.purchased),
        "lastUpdatedTime": iso(order.last_updated(at)),
        "salesChannel": { "channelName": "AMAZON", "marketplaceId": marketplace },
        "fulfillment": { "fulfillmentStatus": status.v2026(), "fulfilledBy": "AMAZON" },
        "orderItems": items,
    });
    if status != Status::Pending {
        json["proceeds"] = json!({ "grandTotal": money(order.amount_minor, currency, false) });
    }
    json
}

fn item_v2026(item: &OrderItem, currency: &str, status: Status) -> Value {
    let fulfilled = if status == Status::Shipped {
        item.quantity
    } else {
        0
    };
    let mut product = json!({
        "asin": asin(item.sku.as_deref().unwrap_or(&item.id)),
        "price": { "unitPrice": money(item.price_minor, currency, false) },
    });
    if let Some(sku) = &item.sku {
        product["sellerSku"] = json!(sku);
    }
    json!({
        "orderItemId": item.id,
        "quantityOrdered": item.quantity,
        "product": product,
        "fulfillment": { "quantityFulfilled": fulfilled, "quantityUnfulfilled": item.quantity - fulfilled },
    })
}

/// FBA inventory of every SKU of the seller in a marketplace.
pub fn inventory(seller: &str, marketplace: &str) -> Vec<Value> {
    (0..SKUS)
        .map(|n| {
            let sku = sku(seller, n);
            let fulfillable = hash(&[seller, marketplace, &sku, "stock"]) % 60;
            json!({
                "asin": asin(&sku),
                "fnSku": format!("X00{:07X}", hash(&[&sku, "fn"]) & 0xfff_ffff),
                "sellerSku": sku,
                "condition": "NewItem",
                "inventoryDetails": { "fulfillableQuantity": fulfillable },
                "totalQuantity": fulfillable + hash(&[&sku, "inbound"]) % 5,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seller_and_window_give_the_same_orders() {
        let to = Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap();
        let from = to - Duration::days(7);
        let a = orders("SELLER1", "ATVPDKIKX0DER", from, to, 3);
        let b = orders("SELLER1", "ATVPDKIKX0DER", from, to, 3);
        assert_eq!(
            a.iter().map(|o| &o.id).collect::<Vec<_>>(),
            b.iter().map(|o| &o.id).collect::<Vec<_>>()
        );
        assert!(!a.is_empty());
        assert!(a.iter().all(|o| o.purchased >= from && o.purchased < to));
        let other = orders("SELLER2", "ATVPDKIKX0DER", from, to, 3);
        assert!(
            other.iter().all(|o| a.iter().all(|mine| mine.id != o.id)),
            "sellers have their own orders"
        );
        assert_eq!(a[0].items().iter().map(|i| i.quantity).sum::<u64>(), a[0].units);
    }

    #[test]
    fn orders_move_through_their_statuses() {
        let t = Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap();
        let all = orders("LIFE", "ATVPDKIKX0DER", t - Duration::days(7), t, 20);
        let order = all.iter().find(|o| !o.cancelled).expect("a live order");
        assert_eq!(order.status(order.purchased), Status::Pending);
        assert_eq!(order.status(order.authorized), Status::Unshipped);
        assert_eq!(order.status(order.settled), Status::Shipped);
        assert_eq!(order.last_updated(order.settled + LIFECYCLE), order.settled);
        let pending = order_v0(order, "ATVPDKIKX0DER", order.purchased);
        assert!(pending.get("OrderTotal").is_none(), "no total while Pending");
        assert!(order_v0(order, "ATVPDKIKX0DER", order.settled)["OrderTotal"].is_object());
        assert!(all.iter().any(|o| o.cancelled), "some are cancelled");
        let items: Vec<_> = all.iter().flat_map(Order::items).collect();
        assert!(items.iter().any(|i| i.sku.is_none()), "some items have no SKU");
    }

    #[test]
    fn amounts_use_the_currency_minor_unit() {
        assert_eq!(amount(1234, "USD"), "12.34");
        assert_eq!(amount(5, "EUR"), "0.05");
        assert_eq!(amount(1234, "JPY"), "1234");
        assert_eq!(amount(1234, "KWD"), "1.234");
    }
}
