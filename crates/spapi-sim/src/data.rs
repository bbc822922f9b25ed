//! Deterministic seller data: the same seller, day and order always give the same answer.

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

/// Number of distinct SKUs a seller has.
const SKUS: u64 = 12;

pub fn sku(seller: &str, n: u64) -> String {
    format!("SKU-{:04X}-{n:02}", hash(&[seller]) & 0xffff)
}

/// One order of `seller`: its id encodes seller, day and index so items can be derived from it.
#[derive(Debug, Clone)]
pub struct Order {
    pub id: String,
    pub purchased: DateTime<Utc>,
    pub status: &'static str,
    pub amount_cents: u64,
    pub units: u64,
}

/// Orders of `seller` in `marketplace` created in [from, to), about `per_day` a day, oldest first.
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
        let count = rng.below(per_day * 2 + 1);
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
    let status = match rng.below(10) {
        0 => "Canceled",
        1 | 2 => "Unshipped",
        _ => "Shipped",
    };
    let id = format!("{:03}-{day:07}-{:07}", hash(&[seller, marketplace]) % 1000, index);
    let items = order_items(seller, &id);
    let amount_cents = items.iter().map(|i| i.price_cents * i.quantity).sum();
    let units = items.iter().map(|i| i.quantity).sum();
    Order {
        id,
        purchased,
        status,
        amount_cents,
        units,
    }
}

#[derive(Debug, Clone)]
pub struct OrderItem {
    pub sku: String,
    pub quantity: u64,
    pub price_cents: u64,
}

/// The items of an order, derived from the seller and order id.
pub fn order_items(seller: &str, order_id: &str) -> Vec<OrderItem> {
    let mut rng = Rng::new(hash(&[seller, order_id, "items"]));
    (0..=rng.below(3))
        .map(|_| {
            let n = rng.below(SKUS);
            OrderItem {
                sku: sku(seller, n),
                quantity: 1 + rng.below(3),
                price_cents: 500 + hash(&[seller, &n.to_string()]) % 9500,
            }
        })
        .collect()
}

pub fn order_json(order: &Order, marketplace: &str) -> Value {
    let shipped = if order.status == "Shipped" { order.units } else { 0 };
    json!({
        "AmazonOrderId": order.id,
        "PurchaseDate": order.purchased.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "LastUpdateDate": (order.purchased + Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "OrderStatus": order.status,
        "MarketplaceId": marketplace,
        "OrderTotal": { "CurrencyCode": currency(marketplace), "Amount": format!("{}.{:02}", order.amount_cents / 100, order.amount_cents % 100) },
        "NumberOfItemsShipped": shipped,
        "NumberOfItemsUnshipped": order.units - shipped,
    })
}

/// FBA inventory of every SKU of the seller in a marketplace.
pub fn inventory(seller: &str, marketplace: &str) -> Vec<Value> {
    (0..SKUS)
        .map(|n| {
            let sku = sku(seller, n);
            let fulfillable = hash(&[seller, marketplace, &sku, "stock"]) % 60;
            json!({
                "asin": format!("B0{:08X}", hash(&[&sku]) & 0xffff_ffff),
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
        let items = order_items("SELLER1", &a[0].id);
        assert_eq!(items.iter().map(|i| i.quantity).sum::<u64>(), a[0].units);
    }
}
