//! MongoDB's checks: reachable, and its version (`mongo`); every migration applied, unchanged,
//! with the indexes it created present (`mongo.migrations`; `sellersync migrate` fixes it).

use mongodb::Database;
use mongodb::bson::doc;
use sellersync_core::Settings;
use sellersync_core::infra::connections::{close_mongo, mongo_database, ping_mongo};
use sellersync_core::infra::migrations;

use super::{Check, Status, bounded, no_answer};

pub async fn checks(settings: &Settings) -> Vec<Check> {
    let target = format!("MongoDB database {:?}", settings.mongo.database);
    let db = match mongo_database(&settings.mongo, "sellersync-doctor").await {
        Ok(db) => db,
        Err(error) => return vec![Check::new("mongo", Status::Fail, format!("{target}: {error}"))],
    };
    let checked = bounded(check(&db, &target)).await;
    close_mongo(&db).await;
    checked.unwrap_or_else(|| vec![no_answer("mongo", &target)])
}

async fn check(db: &Database, target: &str) -> Vec<Check> {
    if let Err(error) = ping_mongo(db).await {
        let status = if error.is_unavailable() {
            Status::Unreachable
        } else {
            Status::Fail
        };
        return vec![Check::new("mongo", status, format!("{target}: {error}"))];
    }
    let version = db
        .run_command(doc! { "buildInfo": 1 })
        .await
        .ok()
        .and_then(|info| info.get_str("version").ok().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned());
    vec![
        Check::new("mongo", Status::Ok, format!("{target}, server version {version}")),
        migrations_check(db).await,
    ]
}

async fn migrations_check(db: &Database) -> Check {
    let status = match migrations::status(db).await {
        Ok(status) => status,
        Err(error) => return Check::new("mongo.migrations", Status::Fail, format!("cannot read: {error}")),
    };
    if status.is_current() {
        let detail = format!(
            "all {} applied, their indexes present",
            migrations::MIGRATIONS.len()
        );
        return Check::new("mongo.migrations", Status::Ok, detail);
    }
    let mut problems = Vec::new();
    for (what, names) in [
        ("not applied", &status.pending),
        ("changed after they were applied", &status.changed),
        ("indexes missing", &status.missing_indexes),
    ] {
        if !names.is_empty() {
            problems.push(format!("{what}: {}", names.join(", ")));
        }
    }
    Check::new(
        "mongo.migrations",
        Status::Fail,
        format!("{}; run `sellersync migrate`", problems.join("; ")),
    )
}
