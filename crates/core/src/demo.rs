//! Demo data: N users with M seller accounts each, whose refresh tokens the SP-API stand-in
//! accepts. Used by the README's run command and by benchmarks. Idempotent: existing users and
//! accounts are left as they are.

use mongodb::Database;
use mongodb::bson::{Document, doc};
use mongodb::error::{ErrorKind, InsertManyError};

use crate::domain::accounts::{NewAccount, SELLER_ACCOUNTS, USERS};
use crate::domain::spapi::Region;
use crate::infra::error::CoreResult;
use crate::infra::secret::Secret;

/// Documents written per insert call.
const BATCH: usize = 1000;

/// Marketplaces the demo accounts cycle through (user n's account m takes entry n + m), so the
/// demo shows several regions and currencies (USD, EUR, JPY, GBP, CAD, AUD).
const MARKETPLACES: [(Region, &str); 6] = [
    (Region::Na, "ATVPDKIKX0DER"),
    (Region::Eu, "A1PA6795UKMFR9"),
    (Region::Fe, "A1VC38T7YXB528"),
    (Region::Eu, "A1F83G8C2ARO7P"),
    (Region::Na, "A2EUQ1WTGCTBG2"),
    (Region::Fe, "A39IBJ37TRP1C6"),
];

pub fn user_id(n: usize) -> String {
    format!("demo-user-{n:06}")
}

/// Inserts users `demo-user-000000..` and their accounts; returns how many documents were new.
/// `progress` is called with the number of users written so far.
pub async fn seed(
    db: &Database,
    users: usize,
    accounts_per_user: usize,
    progress: &dyn Fn(usize),
) -> CoreResult<u64> {
    let mut inserted = 0;
    for start in (0..users).step_by(BATCH) {
        let end = (start + BATCH).min(users);
        let user_docs: Vec<Document> = (start..end)
            .map(|n| doc! { "_id": user_id(n), "active": true, "updateIntervalMinutes": 60 })
            .collect();
        let account_docs: Vec<Document> = (start..end)
            .flat_map(|n| (0..accounts_per_user).map(move |m| account(n, m)))
            .collect::<CoreResult<_>>()?;
        inserted += insert_new(db, USERS, user_docs).await?;
        inserted += insert_new(db, SELLER_ACCOUNTS, account_docs).await?;
        progress(end);
    }
    Ok(inserted)
}

fn account(n: usize, m: usize) -> CoreResult<Document> {
    let (region, marketplace) = MARKETPLACES[(n + m) % MARKETPLACES.len()];
    let seller = format!("DEMO{n:06}S{m}");
    let account = NewAccount {
        user_id: user_id(n),
        refresh_token: Secret::new(format!("Atzr|{seller}|demo")),
        seller_id: seller,
        region,
        marketplace_id: marketplace.to_owned(),
    };
    let mut fields = account.fields()?;
    fields.insert("_id", account.id());
    Ok(fields)
}

/// Inserts what is not there yet (unordered; duplicates of existing ids are skipped).
async fn insert_new(db: &Database, collection: &str, docs: Vec<Document>) -> CoreResult<u64> {
    if docs.is_empty() {
        return Ok(0);
    }
    let total = docs.len() as u64;
    match db
        .collection::<Document>(collection)
        .insert_many(docs)
        .ordered(false)
        .await
    {
        Ok(result) => Ok(result.inserted_ids.len() as u64),
        Err(error) => match *error.kind {
            ErrorKind::InsertMany(InsertManyError {
                write_errors: Some(ref errors),
                ..
            }) if errors.iter().all(|e| e.code == 11000) => Ok(total - errors.len() as u64),
            _ => Err(error.into()),
        },
    }
}
