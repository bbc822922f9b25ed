//! An account's orders in the refresh window, kept between runs so that an hourly refresh asks
//! Amazon only for what changed since the last one.
//!
//! The first run (or one whose book is gone or does not cover the window) lists the window's
//! orders by creation time. Later runs list the orders *updated* since the book was synced
//! (`lastUpdatedAfter`/`lastUpdatedBefore`: Amazon counts creation and every status change as an
//! update, `orders_2026-01-01.json`), replace those in the book, and drop the orders that left
//! the window. An order updated twice is returned by whichever listing holds its latest update,
//! so none is missed. The book lives in Redis next to the summaries
//! (`<prefix>cache:orders:<account>`, `refresh.order_book_ttl_secs`); losing it only costs one
//! full listing.

use std::collections::HashSet;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::analysis::Window;
use crate::domain::spapi::OrdersBy;
use crate::domain::spapi::models::Order;

/// How far before the last sync an incremental listing starts: covers updates Amazon indexes
/// late and clock differences.
pub const SYNC_OVERLAP: TimeDelta = TimeDelta::minutes(10);

/// A `searchOrders` pagination token "will expire after 24 hours" (`Pagination`,
/// `orders_2026-01-01.json`); one older than this is not sent: its listing starts over.
pub const TOKEN_LIFETIME: TimeDelta = TimeDelta::hours(23);

/// What a run must ask Amazon for: orders created in the window (`OrdersBy::Created`), or those
/// updated since the book was last synced (`OrdersBy::LastUpdated`), from the first page or
/// from where an interrupted pass stopped (`resume`). This is the whole query: every page of it
/// repeats these bounds, and a listing resumed in a later run sends the same ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listing {
    #[serde(with = "orders_by")]
    pub by: OrdersBy,
    pub after: DateTime<Utc>,
    pub before: DateTime<Utc>,
    /// Where an interrupted pass of this listing stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<Resume>,
}

/// The next-page token of an interrupted pass, and when Amazon issued it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resume {
    pub token: String,
    pub issued_at: DateTime<Utc>,
}

impl Listing {
    /// The listing's bounds as Amazon takes them (ISO 8601, seconds).
    pub fn bounds(&self) -> (String, String) {
        let iso = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
        (iso(&self.after), iso(&self.before))
    }
}

/// The orders of one account created in `[from, synced_through)`, as of their last update up to
/// `synced_through`; while a listing is unfinished (`pending`), also the orders its pages
/// returned so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderBook {
    /// The oldest creation time the book covers.
    pub from: DateTime<Utc>,
    /// Every update up to this instant is in the book (`from` when nothing is synced yet).
    pub synced_through: DateTime<Utc>,
    pub orders: Vec<Order>,
    /// A listing stopped part-way (the seller's rate limit ran out): the next run resumes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Listing>,
}

impl OrderBook {
    /// What to list next for `window` at `now` given the stored book (if any): an interrupted
    /// listing where it stopped (from its first page again when its token is too old to be
    /// accepted); the updates since the sync when the book covers the window's start; else the
    /// whole window by creation.
    pub fn listing(book: Option<&Self>, window: Window, now: DateTime<Utc>) -> Listing {
        if let Some(mut pending) = book.and_then(|b| b.pending.clone()) {
            if pending
                .resume
                .as_ref()
                .is_some_and(|r| now - r.issued_at >= TOKEN_LIFETIME)
            {
                pending.resume = None;
            }
            return pending;
        }
        let covers = |book: &&Self| {
            book.from <= window.start && (window.start..=window.end).contains(&book.synced_through)
        };
        match book.filter(covers) {
            Some(book) => Listing {
                by: OrdersBy::LastUpdated,
                after: (book.synced_through - SYNC_OVERLAP).max(book.from),
                before: window.end,
                resume: None,
            },
            None => Listing {
                by: OrdersBy::Created,
                after: window.start,
                before: window.end,
                resume: None,
            },
        }
    }

    /// True when the book holds every update up to the window's end.
    pub fn is_current(&self, window: Window) -> bool {
        self.pending.is_none() && self.from <= window.start && self.synced_through >= window.end
    }

    /// The book after `listing` returned `orders`: complete when `resume` is `None`, else
    /// stopped with `resume` as the next page. A listing by creation that starts anew (not a
    /// resumed one) replaces the book; otherwise the orders replace those with the same id or
    /// join them. Only orders created in the window stay.
    pub fn apply(
        stored: Option<Self>,
        listing: Listing,
        orders: Vec<Order>,
        resume: Option<Resume>,
        window: Window,
    ) -> Self {
        let fresh = listing.by == OrdersBy::Created && listing.resume.is_none();
        let mut book = match stored {
            Some(book) if !fresh => book,
            _ => Self {
                from: listing.after,
                synced_through: listing.after,
                orders: Vec::new(),
                pending: None,
            },
        };
        let changed: HashSet<&str> = orders.iter().map(|o| o.order_id.as_str()).collect();
        book.orders.retain(|o| !changed.contains(o.order_id.as_str()));
        book.orders.extend(orders);
        match resume {
            Some(resume) => {
                book.pending = Some(Listing {
                    resume: Some(resume),
                    ..listing
                })
            }
            None => {
                book.pending = None;
                if listing.by == OrdersBy::Created {
                    book.from = listing.after;
                }
                book.synced_through = listing.before;
            }
        }
        book.orders.retain(|o| created_in(o, window));
        book.orders
            .sort_by(|a, b| (&a.created_time, &a.order_id).cmp(&(&b.created_time, &b.order_id)));
        book
    }
}

/// `OrdersBy` as `created` / `lastUpdated`.
mod orders_by {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::domain::spapi::OrdersBy;

    pub fn serialize<S: Serializer>(by: &OrdersBy, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match by {
            OrdersBy::Created => "created",
            OrdersBy::LastUpdated => "lastUpdated",
        })
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OrdersBy, D::Error> {
        match String::deserialize(d)?.as_str() {
            "created" => Ok(OrdersBy::Created),
            "lastUpdated" => Ok(OrdersBy::LastUpdated),
            other => Err(serde::de::Error::custom(format!("unknown listing {other:?}"))),
        }
    }
}

/// True when the order was created inside the window, both ends included as Amazon's bounds are
/// (an order whose time does not parse is kept: dropping it would hide it from the analysis).
fn created_in(order: &Order, window: Window) -> bool {
    DateTime::parse_from_rfc3339(&order.created_time)
        .map(|t| window.contains(t.with_timezone(&Utc)))
        .unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hour: u32) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&format!("2026-11-20T{hour:02}:55:00Z"))
            .unwrap()
            .with_timezone(&Utc)
    }

    fn window(end_hour: u32) -> Window {
        Window {
            start: at(end_hour) - TimeDelta::hours(6),
            end: at(end_hour),
        }
    }

    fn order(id: &str, created: DateTime<Utc>, status: &str) -> Order {
        serde_json::from_value(serde_json::json!({
            "orderId": id,
            "createdTime": created.to_rfc3339_opts(SecondsFormat::Secs, true),
            "lastUpdatedTime": created.to_rfc3339_opts(SecondsFormat::Secs, true),
            "fulfillment": { "fulfillmentStatus": status },
            "orderItems": []
        }))
        .unwrap()
    }

    /// The book after one complete listing of `window` returning `orders`.
    fn synced(window: Window, orders: Vec<Order>) -> OrderBook {
        OrderBook::apply(
            None,
            OrderBook::listing(None, window, window.end),
            orders,
            None,
            window,
        )
    }

    fn token(name: &str, issued_at: DateTime<Utc>) -> Option<Resume> {
        Some(Resume {
            token: name.into(),
            issued_at,
        })
    }

    fn ids(book: &OrderBook) -> Vec<(&str, Option<&str>)> {
        book.orders
            .iter()
            .map(|o| (o.order_id.as_str(), o.status()))
            .collect()
    }

    #[test]
    fn no_book_lists_the_whole_window_by_creation() {
        let w = window(10);
        let listing = OrderBook::listing(None, w, w.end);
        assert_eq!(
            (listing.by, listing.after, listing.before),
            (OrdersBy::Created, w.start, w.end)
        );
        assert!(synced(w, vec![]).is_current(w));
    }

    #[test]
    fn a_book_synced_an_hour_ago_lists_the_updates_since_with_an_overlap() {
        let book = synced(window(9), vec![]);
        assert!(!book.is_current(window(10)));
        let listing = OrderBook::listing(Some(&book), window(10), at(10));
        assert_eq!(
            (listing.by, listing.after, listing.before),
            (OrdersBy::LastUpdated, at(9) - SYNC_OVERLAP, at(10))
        );
    }

    #[test]
    fn a_book_older_than_the_window_or_narrower_than_it_is_listed_again_whole() {
        let old = synced(window(1), vec![]);
        assert_eq!(
            OrderBook::listing(Some(&old), window(10), at(10)).by,
            OrdersBy::Created
        );
        let narrow = OrderBook {
            from: window(10).start + TimeDelta::hours(1),
            ..old
        };
        assert_eq!(
            OrderBook::listing(Some(&narrow), window(10), at(10)).by,
            OrdersBy::Created
        );
    }

    #[test]
    fn updates_replace_orders_add_new_ones_and_old_ones_leave_the_window() {
        let w9 = window(9);
        let book = synced(
            w9,
            vec![
                order("old", w9.start + TimeDelta::minutes(10), "SHIPPED"),
                order("a", at(8), "UNSHIPPED"),
            ],
        );
        assert_eq!(book.orders.len(), 2);

        let w10 = window(10);
        let listing = OrderBook::listing(Some(&book), w10, at(10));
        let changed = vec![
            order("a", at(8), "SHIPPED"),
            order("b", at(9) + TimeDelta::minutes(30), "UNSHIPPED"),
            // Updated now but created long before the window: not part of it.
            order("ancient", w10.start - TimeDelta::days(3), "CANCELLED"),
        ];
        let book = OrderBook::apply(Some(book), listing, changed, None, w10);
        assert_eq!(ids(&book), vec![("a", Some("SHIPPED")), ("b", Some("UNSHIPPED"))]);
        assert!(book.is_current(w10));
    }

    #[test]
    fn an_interrupted_listing_is_resumed_where_it_stopped_then_caught_up() {
        let w9 = window(9);
        let first = OrderBook::listing(None, w9, at(9));
        let part = OrderBook::apply(
            None,
            first.clone(),
            vec![order("a", at(5), "SHIPPED")],
            token("page-2", at(9)),
            w9,
        );
        assert!(!part.is_current(w9));
        let resumed = OrderBook::listing(Some(&part), window(10), at(10));
        assert_eq!(resumed.resume, token("page-2", at(9)));
        assert_eq!(
            (resumed.after, resumed.before),
            (first.after, first.before),
            "the same listing, whatever the window now is"
        );

        let done = OrderBook::apply(
            Some(part),
            resumed,
            vec![order("b", at(7), "SHIPPED")],
            None,
            window(10),
        );
        assert_eq!(ids(&done), vec![("a", Some("SHIPPED")), ("b", Some("SHIPPED"))]);
        assert_eq!(done.synced_through, at(9));
        let catch_up = OrderBook::listing(Some(&done), window(10), at(10));
        assert_eq!((catch_up.by, catch_up.before), (OrdersBy::LastUpdated, at(10)));
    }

    #[test]
    fn a_token_too_old_for_amazon_restarts_its_listing_from_the_first_page() {
        let w9 = window(9);
        let first = OrderBook::listing(None, w9, at(9));
        let part = OrderBook::apply(None, first.clone(), vec![], token("page-2", at(9)), w9);
        let day_later = at(9) + TOKEN_LIFETIME;
        let again = OrderBook::listing(Some(&part), window(10), day_later);
        assert_eq!(
            again,
            Listing {
                resume: None,
                ..first
            },
            "the same query, from its first page"
        );
    }

    #[test]
    fn the_window_includes_both_its_ends() {
        let w = window(9);
        let book = synced(
            w,
            vec![order("start", w.start, "SHIPPED"), order("end", w.end, "SHIPPED")],
        );
        assert_eq!(book.orders.len(), 2);
    }

    #[test]
    fn a_book_survives_its_json_round_trip() {
        let w = window(9);
        let book = OrderBook::apply(
            None,
            OrderBook::listing(None, w, w.end),
            vec![order("a", at(5), "SHIPPED")],
            token("t", at(8)),
            w,
        );
        let json = serde_json::to_string(&book).unwrap();
        assert_eq!(serde_json::from_str::<OrderBook>(&json).unwrap(), book);
    }
}
