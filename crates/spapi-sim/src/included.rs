//! `includedData`: the data sets a `searchOrders` request asks for (`orders_2026-01-01.json`,
//! parameter `includedData`). Without one, a response holds only an order's basic information
//! (Amazon's guide "Get orders with filtering criteria"); each set adds its fields:
//!
//! | set | fields |
//! |---|---|
//! | `BUYER` | `buyer` |
//! | `RECIPIENT` | `recipient` |
//! | `PROCEEDS` | `proceeds`, each item's `proceeds` |
//! | `EXPENSE` | each item's `expense` |
//! | `PROMOTION` | each item's `promotion` |
//! | `CANCELLATION` | each item's `cancellation` |
//! | `FULFILLMENT` | `fulfillment`, each item's `fulfillment` |
//! | `PACKAGES` | `packages` (merchant-fulfilled orders only) |
//! | `TAX` | `tax`, each item's `tax` |
//! | `PAYMENT` | `payment` |
//! | `FULFILLMENT_ORDERS` | `fulfillmentOrders` (EasyShip orders only) |

/// One value of `includedData`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataSet {
    Buyer,
    Recipient,
    Proceeds,
    Expense,
    Promotion,
    Cancellation,
    Fulfillment,
    Packages,
    Tax,
    Payment,
    FulfillmentOrders,
}

impl DataSet {
    pub const ALL: [DataSet; 11] = [
        Self::Buyer,
        Self::Recipient,
        Self::Proceeds,
        Self::Expense,
        Self::Promotion,
        Self::Cancellation,
        Self::Fulfillment,
        Self::Packages,
        Self::Tax,
        Self::Payment,
        Self::FulfillmentOrders,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Buyer => "BUYER",
            Self::Recipient => "RECIPIENT",
            Self::Proceeds => "PROCEEDS",
            Self::Expense => "EXPENSE",
            Self::Promotion => "PROMOTION",
            Self::Cancellation => "CANCELLATION",
            Self::Fulfillment => "FULFILLMENT",
            Self::Packages => "PACKAGES",
            Self::Tax => "TAX",
            Self::Payment => "PAYMENT",
            Self::FulfillmentOrders => "FULFILLMENT_ORDERS",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|set| set.name() == name)
    }

    /// The order-level field this set adds, if any.
    pub fn order_field(self) -> Option<&'static str> {
        match self {
            Self::Buyer => Some("buyer"),
            Self::Recipient => Some("recipient"),
            Self::Proceeds => Some("proceeds"),
            Self::Fulfillment => Some("fulfillment"),
            Self::Packages => Some("packages"),
            Self::Tax => Some("tax"),
            Self::Payment => Some("payment"),
            Self::FulfillmentOrders => Some("fulfillmentOrders"),
            Self::Expense | Self::Promotion | Self::Cancellation => None,
        }
    }

    /// The item-level field this set adds, if any.
    pub fn item_field(self) -> Option<&'static str> {
        match self {
            Self::Proceeds => Some("proceeds"),
            Self::Expense => Some("expense"),
            Self::Promotion => Some("promotion"),
            Self::Cancellation => Some("cancellation"),
            Self::Fulfillment => Some("fulfillment"),
            Self::Tax => Some("tax"),
            _ => None,
        }
    }
}

/// The sets one request asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DataSets(u16);

impl DataSets {
    pub fn all() -> Self {
        DataSet::ALL.into_iter().collect()
    }

    pub fn contains(self, set: DataSet) -> bool {
        self.0 & (1 << set as u16) != 0
    }

    /// `includedData` as sent (comma-separated); an unknown value names itself in the error.
    pub fn parse(csv: Option<&str>) -> Result<Self, String> {
        let mut sets = Self::default();
        for name in csv.unwrap_or("").split(',').filter(|n| !n.is_empty()) {
            let set = DataSet::parse(name).ok_or_else(|| format!("Invalid includedData value: {name}."))?;
            sets.0 |= 1 << set as u16;
        }
        Ok(sets)
    }
}

impl FromIterator<DataSet> for DataSets {
    fn from_iter<I: IntoIterator<Item = DataSet>>(sets: I) -> Self {
        Self(sets.into_iter().fold(0, |bits, set| bits | 1 << set as u16))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_models_names_and_refuses_others() {
        let sets = DataSets::parse(Some("PROCEEDS,FULFILLMENT")).unwrap();
        assert!(sets.contains(DataSet::Proceeds) && sets.contains(DataSet::Fulfillment));
        assert!(!sets.contains(DataSet::Buyer));
        assert_eq!(DataSets::parse(None).unwrap(), DataSets::default());
        assert!(DataSets::parse(Some("PROCEEDS,proceeds")).is_err());
        assert!(DataSet::ALL.iter().all(|s| DataSets::all().contains(*s)));
    }
}
