//! Which region's SP-API host serves each marketplace (Amazon's "Marketplace IDs" page and "SP-API
//! endpoints" guide). A seller account names both; they must agree, or every call is refused (403
//! "The marketplaces you provided are not valid for region."), so an account is checked where it is
//! stored.

use super::Region;

/// Every marketplace Amazon lists: its id, country code and region.
pub const MARKETPLACES: [(&str, &str, Region); 23] = [
    ("A2EUQ1WTGCTBG2", "CA", Region::Na),
    ("ATVPDKIKX0DER", "US", Region::Na),
    ("A1AM78C64UM0Y8", "MX", Region::Na),
    ("A2Q3Y263D00KWC", "BR", Region::Na),
    ("A28R8C7NBKEWEA", "IE", Region::Eu),
    ("A1RKKUPIHCS9HS", "ES", Region::Eu),
    ("A1F83G8C2ARO7P", "UK", Region::Eu),
    ("A13V1IB3VIYZZH", "FR", Region::Eu),
    ("AMEN7PMS3EDWL", "BE", Region::Eu),
    ("A1805IZSGTT6HS", "NL", Region::Eu),
    ("A1PA6795UKMFR9", "DE", Region::Eu),
    ("APJ6JRA9NG5V4", "IT", Region::Eu),
    ("A2NODRKZP88ZB9", "SE", Region::Eu),
    ("AE08WJ6YKNBMC", "ZA", Region::Eu),
    ("A1C3SOZRARQ6R3", "PL", Region::Eu),
    ("ARBP9OOSHTCHU", "EG", Region::Eu),
    ("A33AVAJ2PDY3EV", "TR", Region::Eu),
    ("A17E79C6D8DWNP", "SA", Region::Eu),
    ("A2VIGQ35RCS4UG", "AE", Region::Eu),
    ("A21TJRUUN4KGV", "IN", Region::Eu),
    ("A19VAU5U5O7RUS", "SG", Region::Fe),
    ("A39IBJ37TRP1C6", "AU", Region::Fe),
    ("A1VC38T7YXB528", "JP", Region::Fe),
];

/// A marketplace and region that cannot go together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MarketplaceError {
    #[error("marketplace {marketplace:?} is not an Amazon marketplace id")]
    Unknown { marketplace: String },
    #[error(
        "marketplace {marketplace} ({country}) is served by the {served_by} region's host, not by region {region}"
    )]
    WrongRegion {
        marketplace: String,
        country: &'static str,
        region: &'static str,
        served_by: &'static str,
    },
}

/// The region whose host serves `marketplace`, if it is an Amazon marketplace.
pub fn region_of(marketplace: &str) -> Option<Region> {
    MARKETPLACES
        .iter()
        .find(|(id, ..)| *id == marketplace)
        .map(|(.., region)| *region)
}

/// The country code of `marketplace` if `region`'s host serves it; why not otherwise.
pub fn check(region: Region, marketplace: &str) -> Result<&'static str, MarketplaceError> {
    let Some((_, country, served_by)) = MARKETPLACES.iter().find(|(id, ..)| *id == marketplace) else {
        return Err(MarketplaceError::Unknown {
            marketplace: marketplace.to_owned(),
        });
    };
    if *served_by != region {
        return Err(MarketplaceError::WrongRegion {
            marketplace: marketplace.to_owned(),
            country,
            region: region.as_str(),
            served_by: served_by.as_str(),
        });
    }
    Ok(country)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marketplace_belongs_to_one_region() {
        assert_eq!(check(Region::Eu, "A1PA6795UKMFR9"), Ok("DE"));
        let wrong = check(Region::Na, "A1PA6795UKMFR9").unwrap_err();
        assert_eq!(
            wrong.to_string(),
            "marketplace A1PA6795UKMFR9 (DE) is served by the eu region's host, not by region na"
        );
        assert!(matches!(
            check(Region::Fe, "NOPE"),
            Err(MarketplaceError::Unknown { .. })
        ));
    }
}
