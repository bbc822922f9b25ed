use mongodb::bson::{Document, doc};
use redis::AsyncCommands;
use sellersync_core::infra::connections::{connect_redis, mongo_database};
use sellersync_core::testing::TestNamespace;

/// Two namespaces used at the same time see neither each other's keys nor documents, and a
/// namespace's data is gone once it is dropped.
#[tokio::test]
async fn two_namespaces_do_not_see_each_other() {
    let (a, b) = (TestNamespace::new(), TestNamespace::new());
    assert_ne!(a.key_prefix(), b.key_prefix());
    assert_ne!(a.database(), b.database());

    let mut redis = connect_redis(&a.settings.redis).await.unwrap();
    let (db_a, db_b) = (
        mongo_database(&a.settings.mongo, "it").await.unwrap(),
        mongo_database(&b.settings.mongo, "it").await.unwrap(),
    );
    let (write_a, write_b) = tokio::join!(
        async {
            let _: () = redis
                .clone()
                .set(format!("{}marker", a.key_prefix()), "a")
                .await
                .unwrap();
            db_a.collection::<Document>("things")
                .insert_one(doc! { "owner": "a" })
                .await
                .unwrap();
        },
        async {
            let _: () = redis
                .clone()
                .set(format!("{}marker", b.key_prefix()), "b")
                .await
                .unwrap();
            db_b.collection::<Document>("things")
                .insert_one(doc! { "owner": "b" })
                .await
                .unwrap();
        },
    );
    let ((), ()) = (write_a, write_b);

    let keys_a: Vec<String> = redis.keys(format!("{}*", a.key_prefix())).await.unwrap();
    assert_eq!(keys_a, vec![format!("{}marker", a.key_prefix())]);
    let owners: Vec<String> = sellersync_core::testing::all_documents(&db_a, "things")
        .await
        .iter()
        .map(|d| d.get_str("owner").unwrap().to_owned())
        .collect();
    assert_eq!(owners, vec!["a"]);

    let (prefix_b, name_b) = (b.key_prefix().to_owned(), b.database().to_owned());
    drop(b);
    let left: Vec<String> = redis.keys(format!("{prefix_b}*")).await.unwrap();
    assert!(left.is_empty(), "keys left after drop: {left:?}");
    let databases = db_a.client().list_database_names().await.unwrap();
    assert!(!databases.contains(&name_b), "{name_b} still exists");
}
