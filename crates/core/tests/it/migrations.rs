use futures::TryStreamExt;
use mongodb::bson::{Document, doc};
use sellersync_core::infra::connections::mongo_database;
use sellersync_core::infra::migrations::{self, MIGRATIONS, MIGRATIONS_COLLECTION};
use sellersync_core::testing::TestNamespace;

#[tokio::test]
async fn migrations_apply_once_and_record_what_they_did() {
    let ns = TestNamespace::new();
    let db = mongo_database(&ns.settings.mongo, "it").await.unwrap();

    let first = migrations::apply(&db).await.unwrap();
    assert_eq!(first.applied.len(), MIGRATIONS.len());
    assert!(first.already_applied.is_empty());

    let second = migrations::apply(&db).await.unwrap();
    assert!(
        second.applied.is_empty(),
        "second run applied {:?}",
        second.applied
    );
    assert_eq!(second.already_applied.len(), MIGRATIONS.len());

    let recorded = db
        .collection::<Document>(MIGRATIONS_COLLECTION)
        .count_documents(doc! {})
        .await
        .unwrap();
    assert_eq!(recorded as usize, MIGRATIONS.len());
}

#[tokio::test]
async fn job_status_indexes_exist_and_the_job_id_is_its_unique_id() {
    let ns = TestNamespace::new();
    let db = mongo_database(&ns.settings.mongo, "it").await.unwrap();
    migrations::apply(&db).await.unwrap();

    let job_status = db.collection::<Document>("job_status");
    let indexes: Vec<_> = job_status
        .list_indexes()
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let names: Vec<String> = indexes
        .iter()
        .filter_map(|i| i.options.as_ref()?.name.clone())
        .collect();
    assert!(
        !names.iter().any(|n| n == "jobId_unique"),
        "0004 dropped the redundant jobId index: {names:?}"
    );
    for expected in ["userId_enqueuedAt", "status_updatedAt", "expireAt_ttl"] {
        assert!(
            names.iter().any(|n| n == expected),
            "missing index {expected} in {names:?}"
        );
    }
    let ttl = indexes
        .iter()
        .find(|i| i.options.as_ref().and_then(|o| o.name.as_deref()) == Some("expireAt_ttl"))
        .unwrap();
    assert_eq!(
        ttl.options.as_ref().unwrap().expire_after,
        Some(std::time::Duration::ZERO)
    );

    // The record's _id is the job id: a second record of one job is refused.
    job_status
        .insert_one(doc! { "_id": "job-1", "jobId": "job-1" })
        .await
        .unwrap();
    let duplicate = job_status
        .insert_one(doc! { "_id": "job-1", "jobId": "job-1" })
        .await
        .unwrap_err();
    let mongodb::error::ErrorKind::Write(mongodb::error::WriteFailure::WriteError(write)) = *duplicate.kind
    else {
        panic!("expected a write error, got {duplicate}");
    };
    assert_eq!(write.code, 11000);
}

#[tokio::test]
async fn an_edited_migration_is_refused() {
    let ns = TestNamespace::new();
    let db = mongo_database(&ns.settings.mongo, "it").await.unwrap();
    migrations::apply(&db).await.unwrap();
    db.collection::<Document>(MIGRATIONS_COLLECTION)
        .update_one(
            doc! { "_id": MIGRATIONS[0].name },
            doc! { "$set": { "checksum": "0000" } },
        )
        .await
        .unwrap();

    let error = migrations::apply(&db).await.unwrap_err().to_string();
    assert!(
        error.contains(MIGRATIONS[0].name) && error.contains("changed"),
        "{error}"
    );
}
