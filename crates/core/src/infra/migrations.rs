//! MongoDB migrations: the index definitions in `migrations/*.json`, compiled in, applied in order
//! and recorded in the `_migrations` collection so each runs once per database.
//!
//! A migration's `dropIndexes` entries are sent as MongoDB `dropIndexes` commands (an index that
//! is already gone is fine), then its `createIndexes` entries verbatim as `createIndexes`
//! commands, which are idempotent for identical specifications; the record adds a checksum so an
//! edited, already-applied migration is refused instead of silently diverging.

use mongodb::Database;
use mongodb::bson::{self, Document, doc};
use serde::Deserialize;

use crate::infra::error::{CoreError, CoreResult};

/// Collection recording applied migrations.
pub const MIGRATIONS_COLLECTION: &str = "_migrations";

/// One migration file.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub name: &'static str,
    pub source: &'static str,
}

macro_rules! migration {
    ($name:literal) => {
        Migration {
            name: $name,
            source: include_str!(concat!("../../../../migrations/", $name, ".json")),
        }
    };
}

/// Every migration, in the order it is applied.
pub const MIGRATIONS: &[Migration] = &[
    migration!("0001_job_status_indexes"),
    migration!("0002_users_and_accounts_indexes"),
    migration!("0003_job_status_updated_at"),
    migration!("0004_job_status_drop_jobId_unique"),
    migration!("0005_account_freshness_indexes"),
    migration!("0006_admin_audit_indexes"),
];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Spec {
    description: String,
    #[serde(default)]
    drop_indexes: Vec<CollectionIndexNames>,
    #[serde(default)]
    create_indexes: Vec<CollectionIndexes>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CollectionIndexNames {
    collection: String,
    names: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CollectionIndexes {
    collection: String,
    indexes: Vec<serde_json::Value>,
}

/// What one call to [`apply`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MigrationReport {
    pub applied: Vec<String>,
    pub already_applied: Vec<String>,
}

impl Migration {
    fn spec(&self) -> CoreResult<Spec> {
        serde_json::from_str(self.source).map_err(|e| self.error(format!("invalid file: {e}")))
    }

    /// FNV-1a of the file: stable across builds and platforms, enough to notice an edit.
    pub fn checksum(&self) -> String {
        let hash = self.source.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        format!("{hash:016x}")
    }

    fn error(&self, reason: impl Into<String>) -> CoreError {
        CoreError::Migration {
            name: self.name.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Applies every migration not yet recorded in `db`. Safe to run from several processes at once.
pub async fn apply(db: &Database) -> CoreResult<MigrationReport> {
    let records = db.collection::<Document>(MIGRATIONS_COLLECTION);
    let mut report = MigrationReport::default();
    for migration in MIGRATIONS {
        let checksum = migration.checksum();
        if let Some(recorded) = records.find_one(doc! { "_id": migration.name }).await? {
            let recorded_sum = recorded.get_str("checksum").unwrap_or_default();
            if recorded_sum != checksum {
                return Err(migration.error(format!(
                    "was changed after it was applied (checksum {recorded_sum} recorded, {checksum} now); add a new migration instead"
                )));
            }
            report.already_applied.push(migration.name.to_owned());
            continue;
        }
        let spec = migration.spec()?;
        for entry in &spec.drop_indexes {
            drop_indexes(db, migration, entry).await?;
        }
        for entry in &spec.create_indexes {
            create_indexes(db, migration, entry).await?;
        }
        let record = doc! {
            "checksum": &checksum,
            "description": &spec.description,
            "appliedAt": bson::DateTime::now(),
        };
        records
            .update_one(doc! { "_id": migration.name }, doc! { "$setOnInsert": record })
            .upsert(true)
            .await?;
        tracing::info!(migration = migration.name, "migration applied");
        report.applied.push(migration.name.to_owned());
    }
    Ok(report)
}

/// Where a database stands against [`MIGRATIONS`] (`sellersync doctor`), without changing it.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationStatus {
    /// Migrations not recorded as applied.
    pub pending: Vec<String>,
    /// Migrations recorded with another checksum (edited after they were applied).
    pub changed: Vec<String>,
    /// Indexes of applied migrations that are not there (`collection.index`), e.g. dropped by
    /// hand; indexes a later migration drops are not expected.
    pub missing_indexes: Vec<String>,
}

impl MigrationStatus {
    pub fn is_current(&self) -> bool {
        self.pending.is_empty() && self.changed.is_empty() && self.missing_indexes.is_empty()
    }
}

/// Compares `db` with [`MIGRATIONS`]: which are not applied or were changed, and which indexes
/// the applied ones created are missing. Reads only.
pub async fn status(db: &Database) -> CoreResult<MigrationStatus> {
    let records = db.collection::<Document>(MIGRATIONS_COLLECTION);
    let mut status = MigrationStatus::default();
    let mut expected: Vec<(String, String)> = Vec::new();
    for migration in MIGRATIONS {
        let spec = migration.spec()?;
        for entry in &spec.drop_indexes {
            expected.retain(|(c, name)| *c != entry.collection || !entry.names.contains(name));
        }
        match records.find_one(doc! { "_id": migration.name }).await? {
            None => status.pending.push(migration.name.to_owned()),
            Some(record) if record.get_str("checksum").unwrap_or_default() != migration.checksum() => {
                status.changed.push(migration.name.to_owned());
            }
            Some(_) => expected.extend(spec.create_indexes.iter().flat_map(|entry| {
                entry.indexes.iter().filter_map(|index| {
                    let name = index.get("name")?.as_str()?;
                    Some((entry.collection.clone(), name.to_owned()))
                })
            })),
        }
    }
    for (collection, name) in expected {
        if !index_names(db, &collection).await?.contains(&name) {
            status.missing_indexes.push(format!("{collection}.{name}"));
        }
    }
    Ok(status)
}

/// The names of `collection`'s indexes (none when it does not exist).
async fn index_names(db: &Database, collection: &str) -> CoreResult<Vec<String>> {
    match db.collection::<Document>(collection).list_index_names().await {
        Ok(names) => Ok(names),
        Err(e) if matches!(e.kind.as_ref(), mongodb::error::ErrorKind::Command(c) if INDEX_NOT_FOUND.contains(&c.code)) => {
            Ok(Vec::new())
        }
        Err(e) => Err(e.into()),
    }
}

/// MongoDB's code for "index not found" (and for a missing namespace).
const INDEX_NOT_FOUND: [i32; 2] = [27, 26];

async fn drop_indexes(db: &Database, migration: &Migration, entry: &CollectionIndexNames) -> CoreResult<()> {
    for name in &entry.names {
        let dropped = db
            .run_command(doc! { "dropIndexes": &entry.collection, "index": name })
            .await;
        match dropped {
            Ok(_) => {}
            Err(e) if matches!(e.kind.as_ref(), mongodb::error::ErrorKind::Command(c) if INDEX_NOT_FOUND.contains(&c.code)) =>
                {}
            Err(e) => return Err(migration.error(format!("dropIndexes {name} on {}: {e}", entry.collection))),
        }
    }
    Ok(())
}

async fn create_indexes(db: &Database, migration: &Migration, entry: &CollectionIndexes) -> CoreResult<()> {
    let indexes = entry
        .indexes
        .iter()
        .map(|index| {
            bson::to_bson(index).map_err(|e| migration.error(format!("index not representable as BSON: {e}")))
        })
        .collect::<CoreResult<Vec<_>>>()?;
    db.run_command(doc! { "createIndexes": &entry.collection, "indexes": indexes })
        .await
        .map_err(|e| migration.error(format!("createIndexes on {}: {e}", entry.collection)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_file_parses_and_names_are_ordered() {
        let mut previous = "";
        for migration in MIGRATIONS {
            let spec = migration.spec().unwrap_or_else(|e| panic!("{e}"));
            assert!(
                !spec.create_indexes.is_empty() || !spec.drop_indexes.is_empty(),
                "{} does nothing",
                migration.name
            );
            assert!(migration.name > previous, "{} is out of order", migration.name);
            previous = migration.name;
        }
    }

    #[test]
    fn every_file_in_the_migrations_folder_is_listed() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|entry| entry.unwrap().file_name().into_string().ok())
            .filter_map(|name| name.strip_suffix(".json").map(str::to_owned))
            .collect();
        on_disk.sort();
        let listed: Vec<String> = MIGRATIONS.iter().map(|m| m.name.to_owned()).collect();
        assert_eq!(on_disk, listed);
    }

    #[test]
    fn checksum_changes_with_content() {
        let a = Migration {
            name: "x",
            source: "{}",
        };
        let b = Migration {
            name: "x",
            source: "{ }",
        };
        assert_ne!(a.checksum(), b.checksum());
        assert_eq!(a.checksum(), a.checksum());
    }
}
