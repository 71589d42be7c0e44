# `terraform test` (Terraform >= 1.7): plan-only runs against mocked providers, so no cluster is
# needed, only the provider plugins (run in .github/workflows/e2e.yml; this machine is offline).

mock_provider "helm" {}
mock_provider "kubernetes" {}
mock_provider "random" {}
mock_provider "tls" {}

run "defaults_generate_every_secret_and_bundle_postgres" {
  command = plan

  assert {
    condition     = length(kubernetes_secret_v1.identity) == 1 && length(kubernetes_secret_v1.signing_key) == 1 && length(kubernetes_secret_v1.stream_token) == 1
    error_message = "the module should generate the identity, signing key and stream token Secrets"
  }

  assert {
    condition     = yamldecode(helm_release.this.values[0]).postgresql.enabled
    error_message = "database.mode = bundled should enable the chart's PostgreSQL"
  }

  assert {
    condition     = yamldecode(helm_release.this.values[0]).identity.secret.existingSecret == "portcullis-identity-credentials"
    error_message = "the release should read the generated identity Secret"
  }
}

run "existing_secrets_generate_nothing" {
  command = plan

  variables {
    database = { mode = "external" }
    existing_secrets = {
      identity     = "mine-identity"
      signing_key  = "mine-jwks"
      stream_token = "mine-stream"
    }
    signing_key_file = "jwks.json"
  }

  assert {
    condition     = length(kubernetes_secret_v1.identity) + length(kubernetes_secret_v1.signing_key) + length(kubernetes_secret_v1.stream_token) == 0
    error_message = "no Secret should be generated when all are given"
  }

  assert {
    condition     = yamldecode(helm_release.this.values[0]).gateway.signingKey.existingSecretKey == "jwks.json"
    error_message = "the signing key file should be passed to the chart"
  }

  assert {
    condition     = yamldecode(helm_release.this.values[0]).identity.migration.mode == "job"
    error_message = "an external database should use the migration Job"
  }
}

run "external_database_needs_a_dsn_or_a_secret" {
  command = plan

  variables {
    database = { mode = "external" }
  }

  expect_failures = [helm_release.this]
}
