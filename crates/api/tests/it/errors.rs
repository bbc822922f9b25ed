use crate::helpers::spawn_app;

#[tokio::test]
async fn unknown_routes_get_the_error_envelope() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/no/such/route").await;
    assert_eq!(status, 404);
    assert_eq!(body["success"], false);
    assert_eq!(body["error"]["code"], "not_found");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/no/such/route")
    );
}
