//! The configuration readers see values loaded from Secrets Manager (moto) in place of
//! environment variables. Its own test binary: the loaded values are process-wide.

use secrecy::ExposeSecret;
use shared::{
    config::{AuthConfig, JwtKeys, optional_var, sealing_key_from_env},
    secrets::{SecretRequest, SecretsError, load},
};

#[tokio::test]
async fn configuration_reads_secrets_loaded_once_from_secrets_manager() {
    assert_eq!(
        optional_var("JWT_SECRET").expect("readable"),
        None,
        "the test environment must not set JWT_SECRET"
    );
    let client = testkit::moto_secrets_client();
    let jwt = "a-jwt-secret-from-secrets-manager-32+";
    let sealing = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
    let requests = [
        SecretRequest {
            name: "JWT_SECRET",
            arn: testkit::create_secret(&client, "jwt", jwt).await,
        },
        SecretRequest {
            name: "TOKEN_SEALING_KEY",
            arn: testkit::create_secret(&client, "sealing", sealing).await,
        },
    ];

    let count = load(&client, &requests).await.expect("both secrets exist");

    assert_eq!(count, 2);
    let auth = AuthConfig::from_env().expect("JWT_SECRET comes from the secret");
    match auth.keys {
        JwtKeys::SharedSecret(secret) => assert_eq!(secret.expose_secret(), jwt),
        other => panic!("expected the shared secret, got {other:?}"),
    }
    sealing_key_from_env().expect("TOKEN_SEALING_KEY comes from the secret");
    assert_eq!(optional_var("OPENAI_API_KEY").expect("readable"), None);

    // Read once per execution environment: a second load is refused, the first values stay.
    let again = load(&client, &requests[..1])
        .await
        .expect_err("already loaded");
    assert!(matches!(again, SecretsError::AlreadyLoaded), "{again:?}");
    assert_eq!(
        optional_var("JWT_SECRET").expect("readable").as_deref(),
        Some(jwt)
    );
}
