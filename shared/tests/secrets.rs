//! Secrets Manager, read through the real AWS SDK against moto's server.

use secrecy::ExposeSecret;
use shared::secrets::{SecretRequest, SecretsError, fetch};

#[tokio::test]
async fn secrets_are_read_by_arn_each_into_its_variable() {
    let client = testkit::moto_secrets_client();
    // A 4,096-character value with emoji and quotes survives the round trip unchanged.
    let long_key: String = "k🔑\"".repeat(1024);
    let jwt_arn =
        testkit::create_secret(&client, "jwt", "a-jwt-secret-with-at-least-32-chars").await;
    let openai_arn = testkit::create_secret(&client, "openai", &long_key).await;

    let values = fetch(
        &client,
        &[
            SecretRequest {
                name: "JWT_SECRET",
                arn: jwt_arn,
            },
            SecretRequest {
                name: "OPENAI_API_KEY",
                arn: openai_arn,
            },
        ],
    )
    .await
    .expect("both secrets exist");

    assert_eq!(values.len(), 2);
    assert_eq!(
        values["JWT_SECRET"].expose_secret(),
        "a-jwt-secret-with-at-least-32-chars"
    );
    assert_eq!(values["OPENAI_API_KEY"].expose_secret(), long_key);
}

#[tokio::test]
async fn the_rds_managed_database_secret_gives_its_password() {
    let client = testkit::moto_secrets_client();
    let arn = testkit::create_secret(
        &client,
        "rds",
        r#"{"username":"app","password":"s3cr3t/with:url@chars"}"#,
    )
    .await;

    let values = fetch(
        &client,
        &[SecretRequest {
            name: "DATABASE_PASSWORD",
            arn,
        }],
    )
    .await
    .expect("the secret exists");

    assert_eq!(
        values["DATABASE_PASSWORD"].expose_secret(),
        "s3cr3t/with:url@chars"
    );
}

#[tokio::test]
async fn a_missing_secret_fails_naming_the_variable_and_the_arn() {
    let client = testkit::moto_secrets_client();
    let present = testkit::create_secret(&client, "sealing", "AAAA").await;
    let missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:absent-AbCdEf".to_owned();

    let error = fetch(
        &client,
        &[
            SecretRequest {
                name: "TOKEN_SEALING_KEY",
                arn: present,
            },
            SecretRequest {
                name: "META_APP_SECRET",
                arn: missing.clone(),
            },
        ],
    )
    .await
    .expect_err("one secret does not exist");

    assert!(
        matches!(&error, SecretsError::Read { name: "META_APP_SECRET", arn, .. } if *arn == missing),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("META_APP_SECRET") && message.contains(&missing),
        "{message}"
    );
}

#[tokio::test]
async fn a_binary_only_secret_is_refused_as_not_text() {
    let client = testkit::moto_secrets_client();
    let name = format!("binary-{}", ulid::Ulid::new().to_string().to_lowercase());
    let arn = client
        .create_secret()
        .name(&name)
        .secret_binary(aws_sdk_secretsmanager::primitives::Blob::new(vec![
            0u8, 1, 2,
        ]))
        .send()
        .await
        .expect("create")
        .arn
        .expect("an ARN");

    let error = fetch(
        &client,
        &[SecretRequest {
            name: "ADMIN_API_SECRET",
            arn: arn.clone(),
        }],
    )
    .await
    .expect_err("no SecretString");

    assert!(
        matches!(&error, SecretsError::NotText { name: "ADMIN_API_SECRET", arn: a } if *a == arn),
        "{error:?}"
    );
}

#[tokio::test]
async fn no_requests_read_nothing() {
    let client = testkit::moto_secrets_client();

    let values = fetch(&client, &[]).await.expect("nothing to read");

    assert!(values.is_empty());
}
