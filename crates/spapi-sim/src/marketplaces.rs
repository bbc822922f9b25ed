//! Amazon's marketplaces as its "Marketplace IDs" page lists them: each id with its country, the
//! region whose host serves it, and the currency its orders are priced in.
//!
//! Kept apart from the client's own table (`sellersync_core::domain::marketplaces`) on purpose:
//! the stand-in plays Amazon, and a mistake in our client's table must not be repeated here.
//!
//! A host answers only its own region's marketplaces; any other id gets what Amazon sends for it
//! (`amzn/selling-partner-api-models` issue 5126, Orders v2026-01-01): 403 `Unauthorized`,
//! "Access to requested resource is denied.", details "The marketplaces you provided are not
//! valid for region."

/// An SP-API region: one host each (`sellingpartnerapi-na/-eu/-fe.amazon.com`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Region {
    Na,
    Eu,
    Fe,
}

impl Region {
    pub const ALL: [Region; 3] = [Region::Na, Region::Eu, Region::Fe];

    pub fn name(self) -> &'static str {
        match self {
            Self::Na => "na",
            Self::Eu => "eu",
            Self::Fe => "fe",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marketplace {
    pub id: &'static str,
    pub country: &'static str,
    pub region: Region,
    /// ISO 4217 code of the marketplace's currency.
    pub currency: &'static str,
}

const fn mk(id: &'static str, country: &'static str, region: Region, currency: &'static str) -> Marketplace {
    Marketplace {
        id,
        country,
        region,
        currency,
    }
}

/// Every marketplace on Amazon's Marketplace IDs page.
pub const MARKETPLACES: [Marketplace; 23] = [
    mk("A2EUQ1WTGCTBG2", "CA", Region::Na, "CAD"),
    mk("ATVPDKIKX0DER", "US", Region::Na, "USD"),
    mk("A1AM78C64UM0Y8", "MX", Region::Na, "MXN"),
    mk("A2Q3Y263D00KWC", "BR", Region::Na, "BRL"),
    mk("A28R8C7NBKEWEA", "IE", Region::Eu, "EUR"),
    mk("A1RKKUPIHCS9HS", "ES", Region::Eu, "EUR"),
    mk("A1F83G8C2ARO7P", "UK", Region::Eu, "GBP"),
    mk("A13V1IB3VIYZZH", "FR", Region::Eu, "EUR"),
    mk("AMEN7PMS3EDWL", "BE", Region::Eu, "EUR"),
    mk("A1805IZSGTT6HS", "NL", Region::Eu, "EUR"),
    mk("A1PA6795UKMFR9", "DE", Region::Eu, "EUR"),
    mk("APJ6JRA9NG5V4", "IT", Region::Eu, "EUR"),
    mk("A2NODRKZP88ZB9", "SE", Region::Eu, "SEK"),
    mk("AE08WJ6YKNBMC", "ZA", Region::Eu, "ZAR"),
    mk("A1C3SOZRARQ6R3", "PL", Region::Eu, "PLN"),
    mk("ARBP9OOSHTCHU", "EG", Region::Eu, "EGP"),
    mk("A33AVAJ2PDY3EV", "TR", Region::Eu, "TRY"),
    mk("A17E79C6D8DWNP", "SA", Region::Eu, "SAR"),
    mk("A2VIGQ35RCS4UG", "AE", Region::Eu, "AED"),
    mk("A21TJRUUN4KGV", "IN", Region::Eu, "INR"),
    mk("A19VAU5U5O7RUS", "SG", Region::Fe, "SGD"),
    mk("A39IBJ37TRP1C6", "AU", Region::Fe, "AUD"),
    mk("A1VC38T7YXB528", "JP", Region::Fe, "JPY"),
];

pub fn find(id: &str) -> Option<&'static Marketplace> {
    MARKETPLACES.iter().find(|m| m.id == id)
}

/// The marketplace `id` if `region`'s host serves it.
pub fn served_by(id: &str, region: Region) -> Option<&'static Marketplace> {
    find(id).filter(|m| m.region == region)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_marketplace_is_listed_once_with_a_three_letter_currency() {
        for (i, m) in MARKETPLACES.iter().enumerate() {
            assert!(MARKETPLACES[..i].iter().all(|o| o.id != m.id), "{} twice", m.id);
            assert_eq!(m.currency.len(), 3);
        }
        assert_eq!(find("A1VC38T7YXB528").map(|m| m.currency), Some("JPY"));
        assert!(served_by("A1PA6795UKMFR9", Region::Na).is_none());
        assert!(served_by("A1PA6795UKMFR9", Region::Eu).is_some());
    }
}
